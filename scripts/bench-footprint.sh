#!/usr/bin/env bash
# Footprint of the release tray app: idle memory (RSS, PSS, USS) with the
# window closed, open and closed again, and wake-ups over an idle minute.
# Needs Xvfb, dbus, gnome-keyring, xdotool and python3-dbus/python3-gi
# (scripts/install-deps.sh). Arguments go to the benchmark:
#   scripts/bench-footprint.sh [--idle-secs N] [--settle-secs N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p mcp-auth-tray -p mcp-auth-e2e --bin mcp-auth-tray --bin tray-footprint
exec target/release/tray-footprint "$@"
