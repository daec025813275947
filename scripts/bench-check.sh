#!/usr/bin/env bash
# Benchmark `roster check` on a generated roster (not a test: figures go to README.md).
# Usage: scripts/bench-check.sh [PARTNERS] [GROUPS] [MEMBERSHIPS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
partners=${1:-100000} groups=${2:-5000} memberships=${3:-300000} runs=${4:-5}
cargo build --release --quiet --bin roster --example gen-roster
file=$(mktemp --suffix=.yaml)
trap 'rm -f "$file"' EXIT
target/release/examples/gen-roster "$partners" "$groups" "$memberships" > "$file"
echo "roster: $partners partners, $groups groups, $memberships memberships, $(du -h "$file" | cut -f1)"
for i in $(seq "$runs"); do
  /usr/bin/time -f "run $i: %e s wall, %U s user, %M KiB peak RSS" \
    target/release/roster check "$file" --format json > /dev/null || true
done
