#!/usr/bin/env bash
# Apply one generated roster (20,000 partners by default) onto an empty
# SQLite store and an empty PostgreSQL database, side by side in one run.
# PostgreSQL: ROSTER_BENCH_PG=postgres://USER:PASSWORD@HOST/DB (an empty
# database), or else a throwaway cluster from the PostgreSQL binaries found
# (pg_config --bindir, /usr/lib/postgresql/*/bin), removed at the end.
# ROSTER_BIN=PATH measures that roster binary instead of this tree's (one
# kept from before a change, to compare runs taken in turn).
# Usage: [BENCH_RUNS=3] [PROFILE=release] scripts/bench-apply.sh [PARTNERS] [GROUPS] [MEMBERSHIPS]
set -euo pipefail
cd "$(dirname "$0")/.."
partners=${1:-20000} groups=${2:-1000} memberships=${3:-60000}
runs=${BENCH_RUNS:-3} profile=${PROFILE:-release}
echo "machine: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
flag=--release; [ "$profile" = release ] || flag=
cargo build $flag --quiet --bin roster --example gen-roster
bin=target/$([ "$profile" = release ] && echo release || echo debug)
roster=${ROSTER_BIN:-$bin/roster}
work=$(mktemp -d)
cleanup() {
    if [ -n "${pgpid:-}" ]; then
        # The server itself, not runuser (which passes no signal on).
        kill -INT "$(head -n 1 "$work/pg/postmaster.pid" 2>/dev/null)" 2>/dev/null || true
        wait "$pgpid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
"$bin/examples/gen-roster" "$partners" "$groups" "$memberships" >"$work/roster.yaml"

pg=${ROSTER_BENCH_PG:-}
if [ -z "$pg" ]; then
    pgbin=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -n 1 || true)
    if [ -x "$pgbin/initdb" ]; then
        as=(); [ "$(id -u)" = 0 ] && { chown postgres: "$work"; as=(runuser -u postgres --); }
        "${as[@]}" "$pgbin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
        port=$(( 20000 + RANDOM % 20000 ))
        "${as[@]}" "$pgbin/postgres" -D "$work/pg" -p "$port" -c listen_addresses=127.0.0.1 \
            -c unix_socket_directories="$work" -c fsync=off -c synchronous_commit=off >"$work/pg.log" 2>&1 &
        pgpid=$!
        for _ in $(seq 50); do "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" && break; sleep 0.2; done
        pg="postgres://postgres@127.0.0.1:$port/postgres"
    else
        echo "no PostgreSQL: set ROSTER_BENCH_PG to measure it"
    fi
fi

# Best wall time of $runs applies onto an empty store; $1 names the store,
# $2 makes it empty.
best() {
    local name=$1 reset=$2 best= t
    for _ in $(seq "$runs"); do
        eval "$reset"
        local start=$(date +%s.%N)
        "$roster" apply --yes --store "$store" "$work/roster.yaml" >/dev/null
        t=$(echo "$(date +%s.%N) - $start" | bc)
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
    done
    printf '%-12s %8.2f s\n' "$name" "$best"
}
echo "apply $partners partners, $groups groups, $memberships memberships onto an empty store (best of $runs):"
store="sqlite:$work/bench.db"
best SQLite 'rm -f "$work"/bench.db*'
if [ -n "$pg" ]; then
    store=$pg
    best PostgreSQL 'psql -q "$pg" -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public" >/dev/null 2>&1 || "$pgbin/psql" -q "$pg" -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public" >/dev/null'
fi
