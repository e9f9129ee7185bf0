#!/usr/bin/env bash
# Checks a .deb's Depends: against what its binaries really need, found
# independently of how scripts/package.sh made the field: every ELF file the
# package installs under /usr/bin, its NEEDED entries resolved through the
# dynamic loader's cache to files, those files to the Debian packages that
# own them (dpkg -S); plus the libraries the tray loads with dlopen, which
# no NEEDED entry names (the appindicator, named as a string in the binary).
# Fails, printing both lists, when the package names differ (a library
# missing from Depends: or one named that nothing uses). Version bounds are
# dpkg-shlibdeps' and are not compared. Usage: check-depends.sh <deb>
set -euo pipefail
deb="$1"

# The libraries loaded at run time by name (libappindicator-sys tries these).
DLOPENED=(libayatana-appindicator3.so.1)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work"

owner() { # <soname> -> the package owning the file the loader resolves it to
  local path real
  path="$(ldconfig -p | awk -v so="$1" '$1 == so && /x86-64/ { print $NF; exit }')"
  [ -n "$path" ] || { echo "cannot resolve $1 with ldconfig" >&2; return 1; }
  real="$(readlink -f "$path")"
  # merged /usr: dpkg may know the file under /lib or /usr/lib
  for p in "$path" "$real" "${path#/usr}" "/usr$path" "${real#/usr}" "/usr$real"; do
    if pkg="$(dpkg -S "$p" 2>/dev/null)"; then
      pkg="${pkg%%$'\n'*}"
      printf '%s\n' "${pkg%%:*}"
      return 0
    fi
  done
  echo "no package owns $path" >&2
  return 1
}

sonames="$(
  for f in "$work"/usr/bin/*; do
    if file -b "$f" | grep -q '^ELF'; then
      readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
      for so in "${DLOPENED[@]}"; do
        if grep -qaF "$so" "$f"; then echo "$so"; fi
      done
    fi
  done | sort -u
)"
[ -n "$sonames" ] || { echo "no ELF binary in $deb" >&2; exit 1; }
want="$(for so in $sonames; do owner "$so"; done | sort -u)"
got="$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/:any//; s/^ *//; s/ *$//' | grep . | sort -u)"
if [ "$want" != "$got" ]; then
  echo "Depends: differs from the libraries the binaries use" >&2
  diff <(echo "$want") <(echo "$got") | sed 's/^</  needed, not in Depends:/; s/^>/  in Depends, not needed:/' | grep needed >&2
  exit 1
fi
echo "Depends: names exactly the packages of $(wc -w <<<"$sonames") libraries: $(tr '\n' ' ' <<<"$want")"
