#!/usr/bin/env bash
# `roster invitations send` of N queued invitations (10,000 by default) to a
# local aiosmtpd relay that accepts and discards (tests/fixtures/smtp_relay.py
# --sink, over STARTTLS with the test certificate), so the figures are
# roster's: wall time, messages per second and peak memory (/usr/bin/time -v).
# The store is SQLite, filled by `roster apply` of a generated roster.
# Usage: [PROFILE=release] [PYTHON=python-with-aiosmtpd] scripts/bench-mail.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000} profile=${PROFILE:-release}
echo "machine: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
flag=--release; [ "$profile" = release ] || flag=
cargo build $flag --quiet --bin roster --example gen-roster
bin=target/$([ "$profile" = release ] && echo release || echo debug)
py=${PYTHON:-}
if [ -z "$py" ]; then
    for p in "${ROSTER_PY_BIN:-/nonexistent}/python" target/ci-venv/bin/python target/test-venv/bin/python; do
        if [ -x "$p" ] && "$p" -c "import aiosmtpd" 2>/dev/null; then py=$p; break; fi
    done
fi
if [ -z "$py" ]; then
    python3 -m venv target/test-venv
    target/test-venv/bin/pip install --quiet --disable-pip-version-check aiosmtpd==1.4.6
    py=target/test-venv/bin/python
fi
work=$(mktemp -d)
cleanup() {
    [ -n "${relay:-}" ] && kill "$relay" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
"$bin/examples/gen-roster" "$n" $(( n / 20 + 1 )) "$n" >"$work/roster.yaml"
"$bin/roster" apply --yes --store "sqlite:$work/store.db" "$work/roster.yaml" >/dev/null
queued=$(sqlite3 "$work/store.db" "SELECT count(*) FROM outbox WHERE sent_at IS NULL" 2>/dev/null ||
    "$bin/roster" invitations --store "sqlite:$work/store.db" | tail -n 1)
echo "queued: $queued"
mkfifo "$work/ready"
"$py" tests/fixtures/smtp_relay.py --dir "$work" --sink \
    --tls tests/fixtures/tls/server.crt tests/fixtures/tls/server.key >"$work/ready" 2>"$work/relay.log" &
relay=$!
read -r _ port <"$work/ready"
start=$(date +%s.%N)
/usr/bin/time -v "$bin/roster" invitations send --store "sqlite:$work/store.db" \
    --smtp "smtp://localhost:$port" --smtp-ca tests/fixtures/tls/server.crt \
    --from 'Roster <noreply@example.org>' --link 'https://portal.example/activate?token={token}' \
    >"$work/out" 2>"$work/time"
end=$(date +%s.%N)
cat "$work/out"
secs=$(echo "$end - $start" | bc -l)
sent=$(awk '/^Sent/ {print $2}' "$work/out")
printf 'wall: %.1f s, %.0f messages/s\n' "$secs" "$(echo "$sent / $secs" | bc -l)"
grep -E 'Maximum resident|Elapsed|Percent of CPU' "$work/time"
