#!/usr/bin/env bash
# Runs every auth/* client scenario of the MCP conformance suite, each on its
# own (single-scenario mode, so our exit code and timeouts count), against
# `mcp-auth conformance-client`, for both pinned suite versions. Prints a
# pass table; fails on any failure not listed in
# tests/conformance/expected-failures-<version>.txt, and on stale entries.
#
# Needs: node + npm (Node 22 comes from the npm package `node` if the system's
# is older), the built CLI (cargo build -p mcp-auth-cli). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
tools="$root/target/conformance"
bin="$root/target/debug/mcp-auth"
results="$root/target/conformance/results"
mkdir -p "$tools" "$results"

[ -x "$bin" ] || { echo "build the CLI first: cargo build -p mcp-auth-cli" >&2; exit 2; }

if [ ! -f "$tools/.installed" ] || ! cmp -s "$tools/package.json" tests/conformance/package.json; then
  cp tests/conformance/package.json "$tools/package.json"
  (cd "$tools" && npm install --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null)
  touch "$tools/.installed"
fi
node="$tools/node_modules/.bin/node"
"$node" --version | grep -q '^v22\.' || { echo "Node 22 was not installed" >&2; exit 2; }

declare -A package=( ["0.2.0-alpha.12"]="conformance-current" ["0.1.16"]="conformance-stable" )
overall=0
total_pass=0
total_fail=0
table=""
for version in 0.2.0-alpha.12 0.1.16; do
  suite="$tools/node_modules/${package[$version]}/dist/index.js"
  expected_file="tests/conformance/expected-failures-$version.txt"
  mapfile -t scenarios < <("$node" "$suite" list --client | sed -n 's/^ *- \(auth\/[^ ]*\).*/\1/p')
  pass=0; fail=0; expected=0
  for scenario in "${scenarios[@]}"; do
    log="$results/$version-${scenario//\//_}.log"
    set +e
    timeout 120 "$node" "$suite" client --scenario "$scenario" --timeout 60000 \
      --command "$bin conformance-client" >"$log" 2>&1
    rc=$?
    set -e
    reason="$(sed -n "s|^$scenario  # ||p" "$expected_file")"
    if [ "$rc" -eq 0 ]; then
      if [ -n "$reason" ]; then
        status="STALE (listed as expected failure but passes)"; overall=1; fail=$((fail + 1))
      else
        status="pass"; pass=$((pass + 1))
      fi
    elif [ -n "$reason" ]; then
      status="expected failure: $reason"; expected=$((expected + 1))
    else
      status="FAIL (log: ${log#$root/})"; overall=1; fail=$((fail + 1))
      tail -n 25 "$log" | sed 's/^/    /'
    fi
    table+="| $version | $scenario | $status |"$'\n'
  done
  echo "conformance $version: $pass passed, $expected expected failures, $fail unexpected of ${#scenarios[@]} auth scenarios"
  total_pass=$((total_pass + pass)); total_fail=$((total_fail + fail))
done
printf '\n| suite | scenario | result |\n|---|---|---|\n%s\n' "$table"
echo "conformance: $total_pass passed, $total_fail failed"
exit "$overall"
