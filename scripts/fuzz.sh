#!/usr/bin/env bash
# Fuzzes the paths a stranger's bytes reach, each target for a bounded time (default 60 s):
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Targets: frame_decoder, room_receive, update_shape, websocket_reader (all by default). Each run starts from the
# checked-in corpus in fuzz/corpus/<target>, copied to a scratch directory so runs do not grow
# the repository. Crashes land in fuzz/artifacts/<target>/; minimise one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin -O <target> <file>   (from fuzz/)
# and keep it under fuzz/regressions/<target>/.
#
# Builds are release builds as a production server runs them (no debug assertions, no overflow
# checks: yrs adds clocks read off the wire unchecked, and a run with overflow checks stops at
# the first such sum), with AddressSanitizer for memory errors in yrs's unsafe code. Not part of
# the normal test command.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(frame_decoder room_receive update_shape websocket_reader)
fi

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# cargo-fuzz needs unstable compiler flags; this lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="--cfg erase_components"
build=(-O)
# yrs reserves room for the counts an update declares before reading its entries. A reservation
# a release build would be refused comes back as an error here too, instead of a crash report;
# one it would get stays virtual until written, so only memory actually used (-rss_limit_mb)
# counts. Frames whose counts make yrs write that memory are skipped by the targets.
export ASAN_OPTIONS="allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
limits=(-malloc_limit_mb=65536 -rss_limit_mb=4096)

scratch=$(mktemp -d)
# The room target's SQLite store goes here too: on tmpfs when there is one, so commits are fast.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  store=$(mktemp -d -p /dev/shm tandem-fuzz.XXXXXX)
else
  store="$scratch/store"
  mkdir -p "$store"
fi
trap 'rm -rf "$scratch" "$store"' EXIT

echo "==> building ${targets[*]}"
for target in "${targets[@]}"; do
  cargo fuzz build "${build[@]}" "$target"
done

declare -A summary
status=0
for target in "${targets[@]}"; do
  corpus="$scratch/corpus/$target"
  mkdir -p "$corpus"
  cp corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  mkdir -p artifacts/"$target"
  echo "==> $target for ${seconds}s"
  log="$scratch/$target.log"
  touch "$log.start"
  # One worker process at a time, restarted after a crash, so a run lasts its full time and
  # collects every crash it meets (yrs still panics on some inputs: see fuzz/regressions/).
  TMPDIR="$store" cargo fuzz run "${build[@]}" "$target" "$corpus" -- \
      -max_total_time="$seconds" "${limits[@]}" -fork=1 -ignore_crashes=1 \
      -artifact_prefix="$PWD/artifacts/$target/" 2>&1 | tee "$log" || status=1
  last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1)
  runs=$(echo "$last" | grep -oE '^#[0-9]+' | tr -d '#')
  time=$(echo "$last" | grep -oE ' time: [0-9]+' | grep -oE '[0-9]+')
  crashes=$(echo "$last" | grep -oE 'oom/timeout/crash: [0-9/]+' | cut -d' ' -f2)
  rate="?"
  if [ -n "$runs" ] && [ -n "$time" ] && [ "$time" -gt 0 ]; then rate=$((runs / time)); fi
  found=$(find artifacts/"$target" -type f -newer "$log.start" | wc -l)
  summary[$target]="${runs:-?} executions in ${time:-?}s (${rate}/s), oom/timeout/crash ${crashes:-0/0/0}, ${found} new artifact(s)"
done

echo
echo "==> summary (${seconds}s per target)"
for target in "${targets[@]}"; do
  echo "$target: ${summary[$target]}"
done
exit $status
