#!/usr/bin/env bash
# Puts roster on PATH for the CI jobs: the one already there, or built from
# the checkout of roster's repository this script is in (the version the
# pipeline pinned), with cargo.
#   install.sh
# On GitHub Actions the cargo bin directory is added to GITHUB_PATH.
set -euo pipefail
if command -v "${ROSTER_BIN:-roster}" >/dev/null 2>&1; then
    "${ROSTER_BIN:-roster}" --version
    exit 0
fi
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: roster is not on PATH and cargo is not there to build it; install roster (cargo install --locked --path $src) or use an image with Rust" >&2
    exit 1
fi
cargo install --locked --quiet --path "$src"
bin="${CARGO_HOME:-$HOME/.cargo}/bin"
if [ -n "${GITHUB_PATH:-}" ]; then
    echo "$bin" >>"$GITHUB_PATH"
fi
"$bin/roster" --version
