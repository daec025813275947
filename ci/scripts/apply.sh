#!/usr/bin/env bash
# roster apply of a saved plan (the artifact of plan.sh), for CI. The plan is
# applied as it was sealed and approved, or not at all: a plan changed after
# it was made, or made stale by another write, is refused.
#   apply.sh PLAN_FILE
# Exit code (--detailed-exitcode): 0 nothing to change, 2 changes applied,
# 1 refused or failed.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: apply.sh PLAN_FILE" >&2
    exit 1
fi
if [ ! -f "$1" ]; then
    echo "error: $1: no saved plan here; the plan job uploads it as an artifact (plan.sh PLAN_FILE BODY_FILE)" >&2
    exit 1
fi
exec "${ROSTER_BIN:-roster}" apply --yes --detailed-exitcode "$1"
