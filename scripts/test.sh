#!/usr/bin/env bash
# Builds everything and runs every test: unit, integration, the CLI end to end,
# and the real tray app under Xvfb in a private D-Bus session. Needs the
# packages from scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# The end-to-end tests run the built binaries, so build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
