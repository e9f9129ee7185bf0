#!/usr/bin/env bash
# Builds everything and runs every test: unit, integration, the CLI end to end,
# the real tray app under Xvfb in a private D-Bus session, and the MCP
# conformance suite's auth scenarios against our engine. Needs the packages
# from scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The end-to-end tests and the conformance run use the built binaries.
cargo build --workspace --bins --locked
# The real agent, for the end-to-end proof (tests/agent.rs). Without the [mcp]
# extra the agent silently has no MCP support.
if [ ! -x target/hermes-venv/bin/hermes ]; then
  python3 -m venv target/hermes-venv
  target/hermes-venv/bin/pip install --quiet --disable-pip-version-check "hermes-agent[mcp]==0.19.0"
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
tests_status=${PIPESTATUS[0]}
bash scripts/conformance.sh 2>&1 | tee -a "$log"
conformance_status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 2; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     /^conformance: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
[ "$tests_status" -eq 0 ] && [ "$conformance_status" -eq 0 ]
