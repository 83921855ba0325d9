#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz / libFuzzer) of the loader + planner, of `pin`'s rewriter
# and of the agent's webhook request handling, each for a bounded time (default 30 s):
#   ./scripts/fuzz.sh [SECONDS]
# Installs cargo-fuzz from crates.io if missing. The stable toolchain is used with
# RUSTC_BOOTSTRAP=1 (libFuzzer needs -Z flags). Seeds: the example repositories, the embedded
# default, the loader's test fixtures, and the tracked seeds under fuzz/seeds/<target>/ (e.g.
# alias bombs for load_plan, forge deliveries for http_request). A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the script; reproduce with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz
fi
corpus=target/fuzz-corpus
targets=(load_plan pin_sites http_request)
for target in "${targets[@]}"; do
  mkdir -p "$corpus/$target"
  # Tracked seeds: inputs that once found something, or that reach code a random start would
  # not (a signed delivery). Copied each run so an edited seed replaces the stale copy.
  if [ -d "fuzz/seeds/$target" ]; then
    for f in "fuzz/seeds/$target"/*; do
      if [ -f "$f" ]; then cp "$f" "$corpus/$target/seed-$(basename "$f")"; fi
    done
  fi
done
# One seed per desired-state repository: dockhand.yaml, then each stack, NUL-separated.
for repo in examples/*/ desired-state/; do
  [ -f "$repo/dockhand.yaml" ] || continue
  name=$(basename "$repo")
  { cat "$repo/dockhand.yaml"; for f in "$repo"/stacks/*.y*ml; do printf '\0'; cat "$f"; done; } \
    >"$corpus/load_plan/$name"
  for f in "$repo"/stacks/*.y*ml; do cp "$f" "$corpus/pin_sites/$name-$(basename "$f")"; done
done
for f in tests/fixtures/*.y*ml tests/fixtures/*/*.y*ml; do
  [ -f "$f" ] && cp "$f" "$corpus/pin_sites/fixture-$(echo "$f" | tr / _)"
done
# Sanitizer off: the code under test is safe Rust, and the build is minutes shorter.
for target in "${targets[@]}"; do
  echo "fuzz: $target for ${secs}s"
  log=target/fuzz-$target.log
  if ! cargo fuzz run --sanitizer none "$target" "$corpus/$target" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  echo "fuzz: $target: $runs executions, $cov, no crash"
done
