#!/usr/bin/env bash
# Figures for what one request may cost roster serve (not a test: they go to
# README.md), on a store of 2,000 users in 200 groups:
# 1. an 8 KB filter, an `or` chain of `groups.display co "…"` terms;
# 2. a 1 MiB `attributes` list, and one of 100 paths (the most accepted), on
#    a page of 100 users.
# Usage: scripts/bench-serve-cost.sh [ROSTER_BINARY]
#   ROSTER_BENCH_PG=postgres://USER:PASSWORD@HOST/DB  also measures that
#   (empty) PostgreSQL database.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
cargo build --release --quiet --bin roster --example gen-roster
R="${1:-$PWD/target/release/roster}"
G="$PWD/target/release/examples/gen-roster"
T=$(mktemp -d)
SERVE=
trap '[ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T"
"$G" 2000 200 6000 > roster.yaml

# ~215 terms: every other group name, and names no group has.
python3 - > filter.txt <<'PY'
terms, n = [], 0
while True:
    name = f"agency {n:05d}" if n % 3 else f"nobody {n:05d}"
    t = f'groups.display co "{name}"'
    if len(" or ".join(terms + [t])) > 8192:
        break
    terms.append(t)
    n += 2
print(" or ".join(terms), end="")
PY
# SearchRequest bodies (a URL holds at most 64 KB): one just under the 1 MiB
# body limit, one with 100 paths.
python3 - <<'PY'
import json
def body(paths):
    return json.dumps({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                       "count": 100, "attributes": paths}, separators=(",", ":"))
n = (1048576 - 200) // len('"userName",')
open("attrs-1mib.json", "w").write(body(["userName"] * n))
open("attrs-100.json", "w").write(body((["userName", "name.familyName", "emails"] * 34)[:100]))
PY
echo "filter: $(wc -c < filter.txt) bytes, $(grep -o ' or ' filter.txt | wc -l | awk '{print $1 + 1}') terms; attributes: $(wc -c < attrs-1mib.json) bytes ($(jq '.attributes | length' attrs-1mib.json) paths) and 100 paths"

get() { # PATH PARAM@FILE -> "status seconds totalResults"
    curl -s -o out.json -w '%{http_code} %{time_total}' -G "$URL$1" \
        -H "Authorization: Bearer $TOKEN" --data-urlencode "$2" > timing.txt || true
    echo "$(cat timing.txt) $(jq -r '.totalResults // .scimType // "-"' out.json 2>/dev/null || echo -)"
}
post() { # PATH FILE -> "status seconds totalResults"
    curl -s -o out.json -w '%{http_code} %{time_total}' -X POST "$URL$1" \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/scim+json' \
        --data-binary "@$2" > timing.txt || true
    echo "$(cat timing.txt) $(jq -r '.totalResults // .scimType // "-"' out.json 2>/dev/null || echo -)"
}

for store in sqlite:cost.db ${ROSTER_BENCH_PG:+"$ROSTER_BENCH_PG"}; do
    "$R" apply --yes --store "$store" roster.yaml > /dev/null
    TOKEN=$("$R" token create --name "bench-$RANDOM" --store "$store" 2>/dev/null)
    extra=()
    if "$R" serve --help | grep -q filter-timeout; then extra=(--filter-timeout 600); fi
    "$R" serve --listen 127.0.0.1:0 --store "$store" "${extra[@]}" 2> serve.log &
    SERVE=$!
    for _ in $(seq 50); do grep -q http serve.log && break; sleep 0.1; done
    URL=$(grep -o 'http://[^ ]*' serve.log | head -1)
    kind=${store%%:*}
    for run in 1 2 3; do
        echo "$kind run $run: 8 KB groups.display filter, count=100: $(get '/Users?count=100' filter@filter.txt) (status s totalResults)"
    done
    echo "$kind: 1 MiB attributes list, count=100: $(post /Users/.search attrs-1mib.json)"
    echo "$kind: 100-path attributes list, count=100: $(post /Users/.search attrs-100.json)"
    kill "$SERVE"; wait "$SERVE" 2>/dev/null || true; SERVE=
done
