#!/usr/bin/env bash
# Posts BODY_FILE as the pull request's plan comment, or updates the one an
# earlier run posted: the comment by ROSTER_COMMENT_AUTHOR whose body starts
# with the hidden marker `<!-- roster-plan -->`, so each push edits one
# comment instead of adding another.
#   comment-github.sh BODY_FILE
# Environment: GITHUB_TOKEN, GITHUB_REPOSITORY (owner/name), ROSTER_PR (the
# pull request's number), GITHUB_API_URL (default https://api.github.com),
# ROSTER_COMMENT_AUTHOR (default github-actions[bot], whom GITHUB_TOKEN
# acts as). Needs curl and jq.
set -euo pipefail
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
    echo "usage: comment-github.sh BODY_FILE" >&2
    exit 1
fi
: "${GITHUB_TOKEN:?set GITHUB_TOKEN (the workflow token, with pull-requests: write)}"
: "${GITHUB_REPOSITORY:?set GITHUB_REPOSITORY (owner/name)}"
: "${ROSTER_PR:?set ROSTER_PR to the pull request number}"
case "$ROSTER_PR" in
    '' | *[!0-9]*) echo "error: ROSTER_PR=$ROSTER_PR is not a pull request number" >&2; exit 1 ;;
esac
api="${GITHUB_API_URL:-https://api.github.com}"
author="${ROSTER_COMMENT_AUTHOR:-github-actions[bot]}"
marker="<!-- roster-plan -->"

call() { # METHOD PATH [JSON]
    local args=(--silent --show-error --fail-with-body --max-time 30
        -X "$1" "$api$2"
        -H "Authorization: Bearer $GITHUB_TOKEN"
        -H "Accept: application/vnd.github+json"
        -H "X-GitHub-Api-Version: 2022-11-28")
    if [ $# -ge 3 ]; then
        args+=(-H "Content-Type: application/json" --data-binary "$3")
    fi
    curl "${args[@]}"
}

id=""
page=1
while [ "$page" -le 50 ]; do
    list="$(call GET "/repos/$GITHUB_REPOSITORY/issues/$ROSTER_PR/comments?per_page=100&page=$page")"
    id="$(jq -r --arg m "$marker" --arg a "$author" \
        '[.[] | select(.user.login == $a and (.body // "" | startswith($m)))][0].id // empty' <<<"$list")"
    if [ -n "$id" ] || [ "$(jq 'length' <<<"$list")" -lt 100 ]; then
        break
    fi
    page=$((page + 1))
done
payload="$(jq -Rs '{body: .}' <"$1")"
if [ -n "$id" ]; then
    call PATCH "/repos/$GITHUB_REPOSITORY/issues/comments/$id" "$payload" >/dev/null
    echo "updated plan comment $id on pull request #$ROSTER_PR"
else
    id="$(call POST "/repos/$GITHUB_REPOSITORY/issues/$ROSTER_PR/comments" "$payload" | jq -r '.id')"
    echo "posted plan comment $id on pull request #$ROSTER_PR"
fi
