#!/usr/bin/env bash
# Fuzzes every parser of the server that takes outside bytes (server/fuzz/, cargo fuzz and
# libFuzzer): the snapshot reader, WAL recovery, the HTTP/2 :authority shim, the config file,
# the command line, peer messages.
#
#   scripts/fuzz.sh              # each target 20 s (CI)
#   scripts/fuzz.sh 600          # each target 10 minutes (the long run by hand)
#   scripts/fuzz.sh 60 wal peer_message   # only these targets
#
# Targets run one after the other, one process each, under nice (the machine may be shared),
# on a scratch copy of the committed seed corpus (server/fuzz/corpus/), so the clone stays
# clean. Prints each target's executions and coverage; exits 1 naming the crashing input
# if any target crashed (panic, timeout, out-of-memory or a huge allocation). A crash becomes
# a regression test by copying the input into server/fuzz/regressions/<target>/
# (tests/fuzz_regressions.rs replays that directory on stable).
#
# Environment: FUZZ_PROFILE (release, the default, or dev), FUZZ_TARGET_DIR (build dir, default
# server/fuzz/target), FUZZ_WORK (scratch
# corpus and crash inputs, default a new temporary dir), CARGO_FUZZ_ROOT (where cargo-fuzz
# is installed when missing, default ~/.cache/ballast-tools/cargo-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

seconds=${1:-20}
shift || true
all_targets=(snapshot wal h2_authority config_file config_flags peer_message)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

root=${CARGO_FUZZ_ROOT:-$HOME/.cache/ballast-tools/cargo-fuzz}
export PATH="$root/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz into $root"
  cargo install --locked cargo-fuzz --root "$root"
fi

# cargo fuzz needs nightly (-Z flags, sanitizer coverage); without a nightly toolchain,
# stable accepts the same flags with RUSTC_BOOTSTRAP=1.
if cargo +nightly --version >/dev/null 2>&1; then
  fuzz=(cargo +nightly fuzz)
else
  echo "no nightly toolchain: building with stable and RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi

target_dir=${FUZZ_TARGET_DIR:-$repo/server/fuzz/target}
# No AddressSanitizer: the server and its parsers are safe Rust, and what the targets look
# for (panics, arithmetic overflow with -a, hangs, memory blow-ups through libFuzzer's
# -rss_limit_mb/-malloc_limit_mb) needs none; without it the targets run about twice as fast.
# 16 codegen units: the dependency tree is large and the build is most of a cold run.
build_flags=(-s none -a --codegen-units 16 --target-dir "$target_dir")
# FUZZ_PROFILE=dev builds without optimisation: a cold build takes a fraction of the time
# of an optimised one and runs several times fewer executions per second, which suits the
# brief CI run (its corpus and a few hundred thousand mutations), not the long run by hand.
profile=release
if [ "${FUZZ_PROFILE:-release}" = dev ]; then
  build_flags+=(--dev)
  profile=debug
fi
start=$(date +%s)
(cd server/fuzz && nice "${fuzz[@]}" build "${build_flags[@]}")
echo "build: $(($(date +%s) - start)) s"
bin_dir=$target_dir/x86_64-unknown-linux-gnu/$profile

work=${FUZZ_WORK:-$(mktemp -d -t ballast-fuzz.XXXXXX)}
mkdir -p "$work"
failed=()
for t in "${targets[@]}"; do
  corpus=$work/corpus/$t
  artifacts=$work/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  cp -r "server/fuzz/corpus/$t/." "$corpus/"
  log=$work/$t.log
  echo "== $t: $seconds s"
  set +e
  nice "$bin_dir/$t" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/cov \1, features \2, corpus \3/')
  echo "   executions ${execs:-?}, ${cov:-no coverage line}, exit $rc"
  crash=$(find "$artifacts" -type f | head -1)
  if [ "$rc" -ne 0 ] || [ -n "$crash" ]; then
    echo "   CRASH in $t: input ${crash:-(none written)}; log $log"
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -5 | sed 's/^/   /'
    if [ -n "$crash" ] && [ "$(stat -c %s "$crash")" -le 4096 ]; then
      echo "   input (base64): $(base64 -w0 "$crash")"
    fi
    failed+=("$t")
  fi
done
echo "total: $(($(date +%s) - start)) s; logs and corpora in $work"
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]}"
  exit 1
fi
