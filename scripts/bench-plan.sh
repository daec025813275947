#!/usr/bin/env bash
# Benchmark plan and apply at scale, each figure next to its floor measured in
# the same run (not a test: figures go to README.md). See benches/plan.rs.
# Usage: [BENCH_RUNS=3] [BENCH_ONLY=access] scripts/bench-plan.sh
# BENCH_ONLY=access runs case 1 and its variant with roles, entitlements and
# case managers on every partner (case 4) alone. BENCH_KEEP=1 keeps the
# generated rosters and stores (their directory is printed) for profiling.
# Needs ~2 GiB free in $TMPDIR (the 1M-account store and the applied stores).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/^MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo)"
echo "runs: ${BENCH_RUNS:-3} per figure (best kept)"
cargo bench --bench plan --quiet --no-run
start=$(date +%s)
cargo bench --bench plan --quiet
echo "bench wall time: $(( $(date +%s) - start )) s"
