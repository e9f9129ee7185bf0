#!/usr/bin/env bash
# Installs the Debian 12 packages needed to build mcp-auth-tray and run all its
# tests. Idempotent; run as root or with sudo available. Rust itself (cargo,
# rustc >= 1.90) must already be installed.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

BUILD_PACKAGES=(
  build-essential pkg-config      # C toolchain for -sys crates
  libwebkit2gtk-4.1-dev           # Tauri's webview (WebKitGTK 4.1) and GTK 3
  libayatana-appindicator3-dev    # the tray icon (StatusNotifierItem) on Linux
  librsvg2-dev                    # SVG icons in GTK menus
  libxdo-dev                      # menu accelerators on X11 (muda)
)
TEST_PACKAGES=(
  xvfb                            # a headless X server for the real app
  dbus                            # dbus-run-session: a private session bus per test
  gnome-keyring libsecret-tools   # a real Secret Service (OS keychain) for the vault tests, and secret-tool
  python3 python3-dbus python3-gi gir1.2-glib-2.0   # the stand-in tray host and notification server (tests/tray/)
  x11-utils xauth                 # xdpyinfo: wait until Xvfb answers
  xdg-utils desktop-file-utils libglib2.0-bin  # deep links: the scheme's .desktop handler, and `gio open`
  curl                            # the scripted "browser" of the tray tests
  xfce4-panel imagemagick xdotool # a real tray host for screenshots of the menu and the window
)
PACKAGE_PACKAGES=(
  dpkg-dev file                   # dpkg-shlibdeps and file: the .deb's Depends: and its check (scripts/package*.sh)
  man-db                          # `man mcp-auth` in the package test
)
# npm fetches the MCP conformance suite (and Node 22 for it) and the pinned
# Tauri CLI that bundles the packages; any Node works to run npm.
if ! command -v npm >/dev/null 2>&1; then TEST_PACKAGES+=(nodejs npm); fi

$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}" "${PACKAGE_PACKAGES[@]}" >/dev/null

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  echo "note: add \$HOME/.cargo/bin to PATH" >&2
fi
echo "system packages ready"
