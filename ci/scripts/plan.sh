#!/usr/bin/env bash
# roster plan, for CI: saves the sealed plan (mode 0600) and writes the
# Markdown body of the review comment, which starts with the hidden marker
# that finds the comment again on the next push.
#   plan.sh PLAN_FILE BODY_FILE [ROSTER…]
# Exit code: 0 no changes, 2 changes, 1 the plan failed (the body says why).
set -uo pipefail
if [ $# -lt 2 ]; then
    echo "usage: plan.sh PLAN_FILE BODY_FILE [ROSTER…]" >&2
    exit 1
fi
plan_file="$1"
body_file="$2"
shift 2
marker="<!-- roster-plan -->"
err="$(mktemp)"
out="$(mktemp)"
trap 'rm -f "$err" "$out"' EXIT
"${ROSTER_BIN:-roster}" plan --format markdown --detailed-exitcode -o "$plan_file" "$@" >"$out" 2>"$err"
rc=$?
{
    echo "$marker"
    if [ "$rc" -eq 1 ]; then
        echo "### roster plan failed"
        echo
    fi
    cat "$out"
    if [ -s "$err" ]; then
        echo
        echo '```text'
        # A fence inside the output must not close this one.
        sed 's/```/` ` `/g' "$err"
        echo '```'
    fi
} >"$body_file"
cat "$err" >&2
if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
    rc=1
fi
exit "$rc"
