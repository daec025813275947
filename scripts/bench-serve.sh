#!/usr/bin/env bash
# Figures for roster serve (not a test: they go to README.md).
# 1. Requests and wall time to plan 10,000 partners through the SCIM store
#    against `roster serve` holding 100,000 accounts, next to the naive
#    one-request-per-rung count and to planning against the file directly.
# 2. `cargo bench --bench serve`: throughput over SQLite and over PostgreSQL
#    (a throwaway cluster it starts) next to scim2-server, in one run.
# Usage: scripts/bench-serve.sh   (scim2-server on PATH or in $ROSTER_PY_BIN;
#        PostgreSQL's initdb and postgres on PATH or under /usr/lib/postgresql)
#        The bench alone measures one server with ROSTER_BENCH_ONLY=sqlite
#        (postgres, python), and more creates with ROSTER_BENCH_USERS=N.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/^MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo)"
cargo build --release --quiet --bin roster --example gen-roster
R="$PWD/target/release/roster"
G="$PWD/target/release/examples/gen-roster"
T=$(mktemp -d)
SERVE=
trap '[ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T"

"$G" 100000 5000 300000 > big.yaml
start=$(date +%s.%N)
"$R" apply --yes --store sqlite:big.db big.yaml > /dev/null
echo "store: 100,000 accounts, 5,000 groups, 300,000 memberships (applied in $(echo "$(date +%s.%N) - $start" | bc) s)"
# The first 10,000 partners of the same generator, in 500 groups of their own.
"$G" 10000 500 30000 > small.yaml
TOKEN=$("$R" token create --name bench --store sqlite:big.db 2>/dev/null)
"$R" serve --listen 127.0.0.1:0 --store sqlite:big.db 2> serve.log &
SERVE=$!
for _ in $(seq 50); do grep -q http serve.log && break; sleep 0.1; done
URL="scim+$(grep -o 'http://[^ ]*' serve.log | head -1)"

start=$(date +%s.%N)
"$R" plan --store sqlite:big.db small.yaml --format json > direct.json || true
echo "plan 10,000 partners against the SQLite file directly: $(echo "$(date +%s.%N) - $start" | bc) s"
for mode in auto filter list; do
    start=$(date +%s.%N)
    ROSTER_SCIM_TOKEN="$TOKEN" ROSTER_SCIM_LOOKUP=$mode "$R" plan -v --store "$URL" small.yaml \
        --format json > "plan-$mode.json" 2> "plan-$mode.err" || true
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    echo "plan 10,000 partners through roster serve ($mode): $(grep -o 'store: [0-9]* requests' "plan-$mode.err") in $secs s"
done
python3 - <<'PY'
import json
plan = json.load(open("plan-auto.json"))
direct = json.load(open("direct.json"))
same = all(plan[k] == direct[k] for k in ("resolutions", "actions", "summary"))
# One request per rung tried, per person: pinned or email 1, name+dob 2,
# inactive email 3, inactive name+dob 4; a new person tries all 4 and then
# asks which user names are taken (1); plus one request per group.
cost = {"pinned": 1, "email": 1, "name_dob": 2, "inactive_email": 3, "inactive_name_dob": 4}
naive = sum(cost.get(r.get("via"), 5) for r in plan["resolutions"]) + 500
print(f"naive one-request-per-rung: {naive} requests; same plan as the file: {same}")
PY
cd - > /dev/null
echo
# Other work on the machine moves the figures: its load, before and after.
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --bench serve --quiet
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
