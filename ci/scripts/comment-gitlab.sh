#!/usr/bin/env bash
# Posts BODY_FILE as the merge request's plan note, or updates the one an
# earlier run posted: the note by the token's own user whose body starts with
# the hidden marker `<!-- roster-plan -->`.
#   comment-gitlab.sh BODY_FILE
# Environment: ROSTER_NOTE_TOKEN (a project access token with the `api`
# scope), CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID (GitLab sets the
# last three in merge request pipelines). Needs curl and jq.
set -euo pipefail
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
    echo "usage: comment-gitlab.sh BODY_FILE" >&2
    exit 1
fi
: "${ROSTER_NOTE_TOKEN:?set ROSTER_NOTE_TOKEN (a project access token with the api scope)}"
: "${CI_API_V4_URL:?set CI_API_V4_URL}"
: "${CI_PROJECT_ID:?set CI_PROJECT_ID}"
: "${CI_MERGE_REQUEST_IID:?not a merge request pipeline: CI_MERGE_REQUEST_IID is not set}"
case "$CI_MERGE_REQUEST_IID$CI_PROJECT_ID" in
    *[!0-9]*) echo "error: CI_PROJECT_ID and CI_MERGE_REQUEST_IID must be numbers" >&2; exit 1 ;;
esac
api="$CI_API_V4_URL"
marker="<!-- roster-plan -->"
notes="/projects/$CI_PROJECT_ID/merge_requests/$CI_MERGE_REQUEST_IID/notes"

call() { # METHOD PATH [JSON]
    local args=(--silent --show-error --fail-with-body --max-time 30
        -X "$1" "$api$2"
        -H "PRIVATE-TOKEN: $ROSTER_NOTE_TOKEN")
    if [ $# -ge 3 ]; then
        args+=(-H "Content-Type: application/json" --data-binary "$3")
    fi
    curl "${args[@]}"
}

me="$(call GET /user | jq -r '.id')"
id=""
page=1
while [ "$page" -le 50 ]; do
    list="$(call GET "$notes?per_page=100&page=$page&sort=asc")"
    id="$(jq -r --arg m "$marker" --argjson me "$me" \
        '[.[] | select(.author.id == $me and (.body // "" | startswith($m)))][0].id // empty' <<<"$list")"
    if [ -n "$id" ] || [ "$(jq 'length' <<<"$list")" -lt 100 ]; then
        break
    fi
    page=$((page + 1))
done
payload="$(jq -Rs '{body: .}' <"$1")"
if [ -n "$id" ]; then
    call PUT "$notes/$id" "$payload" >/dev/null
    echo "updated plan note $id on merge request !$CI_MERGE_REQUEST_IID"
else
    id="$(call POST "$notes" "$payload" | jq -r '.id')"
    echo "posted plan note $id on merge request !$CI_MERGE_REQUEST_IID"
fi
