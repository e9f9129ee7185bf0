#!/usr/bin/env bash
# Fuzzes the parsers that read what others wrote (libFuzzer through cargo-fuzz):
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# runs every target of fuzz/ (or the ones named) for SECONDS each (default 60)
# and exits 1 if any crashed, hung (10 s for one input) or ran out of memory.
# One line per target, then a summary line.
#
# Works with the stable toolchain alone: cargo-fuzz is installed from crates.io
# when missing (into ~/.cargo/bin, about 1-2 minutes), and RUSTC_BOOTSTRAP=1
# lets stable rustc take the -Z flags cargo-fuzz passes. Needs a C++ compiler
# (libFuzzer is built from source; scripts/install-deps.sh installs one).
#
# Each run starts from the seeds in fuzz/corpus/<target> and the kept crash
# inputs in fuzz/regressions/<target> (so every regression is replayed first),
# and grows its own corpus under target/fuzz/work/corpus/<target>, kept between
# runs. A crash leaves its input in target/fuzz/work/artifacts/<target>/; once
# fixed, copy it to fuzz/regressions/<target>/ (the core's unit test
# `fuzzing::tests` replays those too).
#
# Environment: FUZZ_SANITIZER (default `none`: the code under test forbids
# `unsafe`, so AddressSanitizer finds nothing libFuzzer's own checks miss and
# halves the speed; `address` to use it), FUZZ_TIMEOUT (per input, default 10 s),
# FUZZ_JOBS (targets run at once, default one per core).
set -uo pipefail

CARGO_FUZZ_VERSION=0.13.2
ALL_TARGETS=(www_authenticate callback_query config agent_files dotenv vault_record client_config legacy_sse)

each=${1:-60}
if ! [[ $each =~ ^[0-9]+$ ]] || [ "$each" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (targets: ${ALL_TARGETS[*]})" >&2
  exit 2
fi
shift $(($# > 0 ? 1 : 0))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=("${ALL_TARGETS[@]}"); fi
for t in "${targets[@]}"; do
  if [ ! -f "$(dirname "$0")/../fuzz/fuzz_targets/$t.rs" ]; then
    echo "fuzz: unknown target \`$t\` (targets: ${ALL_TARGETS[*]})" >&2
    exit 2
  fi
done

root=$(cd "$(dirname "$0")/.." && pwd)
target_dir="$root/target/fuzz"
work="$target_dir/work"
sanitizer=${FUZZ_SANITIZER:-none}
timeout=${FUZZ_TIMEOUT:-10}
export RUSTC_BOOTSTRAP=1
started=$(date +%s)

if ! command -v c++ >/dev/null 2>&1; then
  echo "fuzz: no C++ compiler (libFuzzer needs one): run scripts/install-deps.sh" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
  t0=$(date +%s)
  if ! cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --quiet; then
    echo "fuzz: cannot install cargo-fuzz" >&2
    exit 1
  fi
  echo "fuzz: cargo-fuzz installed in $(($(date +%s) - t0)) s"
fi

mkdir -p "$work"
t0=$(date +%s)
if ! (cd "$root/fuzz" && cargo fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir") >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log" >&2
  echo "fuzz: the fuzz targets do not build (log: $work/build.log)" >&2
  exit 1
fi
echo "fuzz: targets built in $(($(date +%s) - t0)) s (sanitizer: $sanitizer)"

host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="$target_dir/$host/release"
# One target's run, its report to $work/<target>.report (the runs go side by
# side; the reports are printed in order afterwards).
fuzz_one() { # <target>
  local t=$1 corpus="$work/corpus/$1" artifacts="$work/artifacts/$1" log="$work/$1.log"
  mkdir -p "$corpus" "$artifacts"
  local seeds=("$root/fuzz/corpus/$t")
  if [ -d "$root/fuzz/regressions/$t" ]; then seeds+=("$root/fuzz/regressions/$t"); fi
  # New inputs go to the first directory only: the seeds in the repo stay as they are.
  "$bin_dir/$t" "$corpus" "${seeds[@]}" \
    -max_total_time="$each" -timeout="$timeout" -artifact_prefix="$artifacts/" \
    -print_final_stats=1 >"$log" 2>&1
  local rc=$?
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
  local last cov ft corp
  last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  if [ $rc -eq 0 ]; then
    printf 'fuzz %-16s ok: %s runs (%s/s), cov %s, ft %s, corpus %s, peak rss %s MB\n' "$t" \
      "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
      "$(stat peak_rss_mb)"
  else
    local input what
    input=$(ls -t "$artifacts" 2>/dev/null | head -n 1)
    # A panic's message is the line after "panicked at"; libFuzzer names the rest
    # (timeout, out-of-memory, a sanitizer's report) on its ERROR line.
    if grep -q 'panicked at' "$log"; then
      what="panic: $(grep -m1 -A1 'panicked at' "$log" | tail -n 1)"
    else
      what=$(grep -m1 -E '^==[0-9]+== ERROR' "$log" | sed 's/^==[0-9]*== ERROR: //')
    fi
    printf 'fuzz %-16s CRASHED (exit %s): %s\n' "$t" "$rc" "${what:-see the log}"
    echo "    input: ${input:+$artifacts/$input}  log: $log"
    echo "    replay: $bin_dir/$t ${input:+$artifacts/$input}"
  fi
  return $rc
} >"$work/$1.report"

# A libFuzzer run keeps one core busy: as many run at once as there are
# cores (FUZZ_JOBS to change it), so 8 targets of a minute take 4 on 2 cores.
jobs=${FUZZ_JOBS:-$(nproc)}
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
  rm -f "$work/$t.rc"
  (
    fuzz_one "$t"
    echo $? >"$work/$t.rc"
  ) &
  running=$((running + 1))
done
wait
ok=0
crashed=()
for t in "${targets[@]}"; do
  cat "$work/$t.report"
  if [ "$(cat "$work/$t.rc" 2>/dev/null)" = 0 ]; then
    ok=$((ok + 1))
  else
    crashed+=("$t")
  fi
done

elapsed=$(($(date +%s) - started))
echo "fuzz: ${#targets[@]} targets, $ok ok, ${#crashed[@]} crashed${crashed:+ (${crashed[*]})}; ${each} s each, $((elapsed / 60)) min $((elapsed % 60)) s in all"
[ ${#crashed[@]} -eq 0 ]
