#!/usr/bin/env bash
# Builds the Linux packages into target/release/bundle/: deb/*.deb and
# rpm/*.rpm, with the Tauri CLI pinned in packaging/package.json (installed
# here with npm; it bundles offline). AppImage is not built: its bundler
# downloads tools at build time.
#
# The packages hold /usr/bin/mcp-auth-tray (a production Tauri build: the
# CLI adds `tauri/custom-protocol`), /usr/bin/mcp-auth, the desktop entry
# (with the URL scheme's MimeType), hicolor icons, man pages and bash/zsh/fish
# completions generated from the CLI's clap definitions. `Depends:` is what
# dpkg-shlibdeps reads off the two binaries, plus the one library loaded at
# run time (the appindicator); scripts/package-test.sh checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CI=true # the Tauri CLI never prompts

npm ci --prefix packaging --no-audit --no-fund --loglevel=error
tauri=packaging/node_modules/.bin/tauri

# The release binaries: the CLI, then the tray as `tauri build` makes it.
cargo build --release --locked -p mcp-auth-cli
(cd src-tauri && "../$tauri" build --no-bundle -- --locked)

# Man pages and completions, from the clap definitions.
assets=target/release/assets
rm -rf "$assets"
target/release/mcp-auth generate-assets "$assets" >/dev/null
gzip -n -9 "$assets"/man/*.1

# Depends: the shared libraries the binaries link (dpkg-shlibdeps), and the
# appindicator, which libappindicator-sys loads with dlopen (so it is in no
# ELF NEEDED entry). Tauri's own default list is replaced by this one.
shlib_dir="$(mktemp -d)"
trap 'rm -rf "$shlib_dir"' EXIT
mkdir -p "$shlib_dir/debian"
touch "$shlib_dir/debian/control"
depends="$(cd "$shlib_dir" && dpkg-shlibdeps -O -e "$OLDPWD/target/release/mcp-auth-tray" -e "$OLDPWD/target/release/mcp-auth" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
[ -n "$depends" ] || { echo "dpkg-shlibdeps found no libraries" >&2; exit 1; }
depends="$depends, libayatana-appindicator3-1"
printf '%s\n' "$depends" >target/release/bundle-depends.txt
python3 - "$depends" >target/release/bundle-config.json <<'PY'
import json, sys
deps = [d.strip() for d in sys.argv[1].split(",") if d.strip()]
print(json.dumps({"bundle": {"linux": {"deb": {"depends": deps}}}}))
PY

# Bundle the tray just built (`tauri bundle`): `tauri build` with this config
# would compile and link it again (the config is part of the binary), 8 min.
rm -rf target/release/bundle/deb target/release/bundle/rpm
(cd src-tauri && "../$tauri" bundle --bundles deb,rpm --config ../target/release/bundle-config.json)

# The file names users type (`apt install ./mcp-auth-tray_<version>_amd64.deb`):
# the bundler names the files after the product name, spaces and all.
product="$(python3 -c 'import json; print(json.load(open("src-tauri/tauri.conf.json"))["productName"])')"
for f in target/release/bundle/deb/*.deb; do
  mv "$f" "target/release/bundle/deb/$(dpkg-deb -f "$f" Package)_$(dpkg-deb -f "$f" Version)_$(dpkg-deb -f "$f" Architecture).deb"
done
package="$(dpkg-deb -f target/release/bundle/deb/*.deb Package)"
for f in target/release/bundle/rpm/*.rpm; do
  name="$(basename "$f")"
  mv "$f" "target/release/bundle/rpm/$package${name#"$product"}"
done
ls -1 target/release/bundle/deb/*.deb target/release/bundle/rpm/*.rpm
