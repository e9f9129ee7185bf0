#!/usr/bin/env bash
# The package as a user gets it: builds the .deb (scripts/package.sh),
# installs it with apt-get (so its Depends: are resolved for real), runs the
# installed binaries, then removes it and checks that nothing of the user's
# was touched. Run as root on Debian 12 after scripts/install-deps.sh and a
# debug build of the tests (scripts/test.sh). Ends with one line
# `package: N passed, M failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export DEBIAN_FRONTEND=noninteractive
SCHEME=dev.mcpauthtray.app
# apt waits for another apt or dpkg run on the machine instead of failing.
APT=(apt-get -o DPkg::Lock::Timeout=300 -y -qq)

passed=0
failed=0
check() { # <what> <command...>
  local what="$1"
  shift
  if "$@"; then
    echo "ok: $what"
    passed=$((passed + 1))
  else
    echo "FAILED: $what"
    failed=$((failed + 1))
  fi
}

start=$(date +%s)
bash scripts/package.sh
echo "package.sh took $(($(date +%s) - start)) s"
deb="$(ls target/release/bundle/deb/*.deb | head -n 1)"
rpm="$(ls target/release/bundle/rpm/*.rpm 2>/dev/null | head -n 1 || true)"
check "an .rpm was built" test -n "$rpm"

# Depends: exactly the packages of the libraries the binaries use, found
# again here from the binaries' NEEDED entries (not from package.sh's list).
check "Depends: names exactly the runtime libraries ($(dpkg-deb -f "$deb" Depends))" bash scripts/check-depends.sh "$deb"
check "the package is named as Debian names them ($(basename "$deb"))" \
  bash -c '[[ "$(basename "$0")" =~ ^mcp-auth-tray_[0-9][0-9.]*_amd64\.deb$ ]]' "$deb"
desktop="$(dpkg-deb -c "$deb" | sed -n 's#.* \(\./\)\{0,1\}usr/share/applications/\(.*\.desktop\)$#\2#p' | head -n 1)"
check "the package has a desktop entry ($desktop)" test -n "$desktop"

# A user with files of their own: the agent's home, settings, logs, the
# opt-in credential file and a real keychain record (gnome-keyring in a
# private session bus, kept in the user's login.keyring). None of it may change.
user="$(mktemp -d)"
trap 'rm -rf "$user" "$user.files"' EXIT
mkdir -p "$user/home" "$user/config/mcp-auth-tray" "$user/data/dev.mcpauthtray.tray/logs" "$user/data/mcp-auth-tray" "$user/run"
chmod 0700 "$user/run"
cp -r tests/fixtures/home "$user/home/.hermes"
printf '{"first_run_done": true, "credential_store": "file"}' >"$user/config/mcp-auth-tray/settings.json"
printf 'yesterday\n' >"$user/data/dev.mcpauthtray.tray/logs/mcp-auth-tray.2026-01-01.log"
printf '{}' >"$user/data/mcp-auth-tray/credentials.json"
as_user() {
  env -u DBUS_SESSION_BUS_ADDRESS HOME="$user/home" XDG_CONFIG_HOME="$user/config" XDG_DATA_HOME="$user/data" \
    XDG_CACHE_HOME="$user/cache" XDG_RUNTIME_DIR="$user/run" NO_COLOR=1 "$@"
}
keychain() { # <shell command run with the user's unlocked keyring>
  as_user dbus-run-session -- sh -c 'eval "$(printf pw | gnome-keyring-daemon --unlock --components=secrets)" && '"$1" 2>/dev/null
}
keychain 'printf s3cret | secret-tool store --label="package test" service mcp-auth-tray-package-test account user'
check "a keychain record of the user's is in place" test -s "$user/data/keyrings/login.keyring"
# The user's files as they are before the package comes: after it is gone
# each must still be there, byte for byte (the programs run in between may
# add files of their own, such as the redirect port in settings; those are
# the app's doing, not the package's).
(cd "$user" && find . -type f -print0 | sort -z) >"$user.files"
fingerprint() { (cd "$user" && xargs -0 sha256sum <"$user.files" 2>&1); }
before="$(fingerprint)"

"${APT[@]}" install "./$deb" >/dev/null
check "mcp-auth-tray is on the PATH" test "$(command -v mcp-auth-tray)" = /usr/bin/mcp-auth-tray
check "mcp-auth is on the PATH" test "$(command -v mcp-auth)" = /usr/bin/mcp-auth
version="$(mcp-auth version)"
check "mcp-auth version names commit and date ($version)" \
  bash -c '[[ "$0" =~ ^mcp-auth\ [0-9.]+\ \(commit\ [0-9a-f]{12},\ built\ [0-9]{4}-[0-9]{2}-[0-9]{2}\)$ ]]' "$version"
status="$(as_user mcp-auth status --hermes-home "$user/home/.hermes")"
check "mcp-auth status lists the fixture's servers" bash -c 'grep -q "notion" <<<"$0" && grep -q "linear" <<<"$0"' "$status"
handler="$(as_user xdg-mime query default "x-scheme-handler/$SCHEME")"
check "xdg-mime names our desktop entry for $SCHEME: ($handler)" test "$handler" = "$desktop"
check "the desktop entry declares the scheme" grep -qx "MimeType=x-scheme-handler/$SCHEME;" "/usr/share/applications/$desktop"
check "the desktop entry hands the URL to the app" grep -qx "Exec=mcp-auth-tray %u" "/usr/share/applications/$desktop"
check "the desktop entry is valid (desktop-file-validate)" desktop-file-validate "/usr/share/applications/$desktop"
check "the app icon is in the hicolor theme" bash -c 'ls /usr/share/icons/hicolor/*/apps/mcp-auth-tray.png >/dev/null'
check "man mcp-auth renders" bash -c 'MANPAGER=cat MANWIDTH=80 man mcp-auth 2>/dev/null | grep -q "mcp-auth-status(1)\|mcp\S*auth status"'
check "man mcp-auth-connect renders" bash -c 'MANPAGER=cat man mcp-auth-connect 2>/dev/null | grep -q -- "--no-browser"'
check "the bash completion loads" bash -c 'source /usr/share/bash-completion/completions/mcp-auth && complete -p mcp-auth >/dev/null'
check "the zsh and fish completions are installed" test -s /usr/share/zsh/vendor-completions/_mcp-auth -a -s /usr/share/fish/vendor_completions.d/mcp-auth.fish

# The end-to-end tests against the installed binaries (built in debug by
# scripts/test.sh; only the test binaries, the app comes from the package).
e2e() { MCP_AUTH_BIN_DIR=/usr/bin cargo test --locked -p mcp-auth-e2e "$@" 2>&1 | tail -n 3; return "${PIPESTATUS[0]}"; }
check "installed mcp-auth: status end to end" e2e --test cli_status
check "installed mcp-auth: version, man pages, completions" e2e --test cli_assets
# (the tray test also checks that an installed tray is a production build)
check "installed mcp-auth-tray under Xvfb: registers its tray item and lists the fixture's servers" \
  e2e --test tray menu_follows_config_and_token_files_and_quits

"${APT[@]}" remove mcp-auth-tray >/dev/null
check "removed: the binaries are gone" test ! -e /usr/bin/mcp-auth -a ! -e /usr/bin/mcp-auth-tray
check "removed: nothing of the user's was touched" test "$(fingerprint)" = "$before"
check "removed: the user's keychain record reads back" test "$(keychain 'secret-tool lookup service mcp-auth-tray-package-test account user')" = s3cret

echo "package: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
