#!/usr/bin/env bash
# roster check, for CI: findings as workflow annotations on GitHub
# (`::error file=…,line=…,col=…::`), as text elsewhere.
#   check.sh [ROSTER…]
# ROSTER_CHECK_FORMAT: github | human | json (default: github under
# GitHub Actions, human otherwise). Exit code: roster check's (0 or 1).
set -euo pipefail
format="${ROSTER_CHECK_FORMAT:-}"
if [ -z "$format" ]; then
    if [ "${GITHUB_ACTIONS:-}" = "true" ]; then format=github; else format=human; fi
fi
exec "${ROSTER_BIN:-roster}" check --format "$format" "$@"
