#!/usr/bin/env bash
# Every benchmark, side by side with docker compose v2 and the bare Engine API, into one report:
#   ./scripts/bench.sh            # full run (≈ 25 min on 2 CPUs, most of it Engine work)
#   ./scripts/bench.sh --smoke    # a few containers, one round: checks the harness (≈ 2 min)
# Installs what it needs (scripts/test-env.sh: Engine, registry, Traefik, compose, a font for
# the plot), builds in release, then runs:
#   - agent -- idle      the ten idle minutes, beside everything else (its own project)
#   - compare            no-op pass, bulk start, one change, planner scaling, plot
#   - swap               20 blue/green swaps under the highest steady load through Traefik
#   - agent -- latency   commit to serving (webhook, polling), drift, no-op git poll
# Writes target/bench/report.md and target/bench/compare.png, and with --keep copies them to
# bench-reports/ (what README links).
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything is inside main, which bash reads whole before running it: editing this file during
# a half-hour run cannot change what the run does next.
main() {
smoke=
keep=0
for a in "$@"; do
  case "$a" in
    --smoke) smoke=--smoke ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--smoke] [--keep]" >&2; exit 2 ;;
  esac
done
started=$(date +%s)
mkdir -p target/bench
# Set-up and both builds at once, since on a fresh machine they are most of the first ten
# minutes: test-env downloads and installs (network, disk) while cargo compiles (CPU). The
# release binary (what users run, the one measured) builds in a target directory of its own,
# so that the bench profile's build of the same binary can neither wait on it nor replace it.
# The two cargo builds share the CPUs; the release build's long serial LTO link leaves one
# core to the other.
echo "bench: setting up the environment and building (release binary and harnesses)…"
./scripts/test-env.sh >target/bench/test-env.log 2>&1 &
env_pid=$!
dist=${CARGO_TARGET_DIR:-$PWD/target}/dist
CARGO_TARGET_DIR=$dist cargo build --release --quiet --bin dockhand &
release_pid=$!
if ! cargo bench --no-run --quiet --bench compare --bench swap --bench agent 2>target/bench/build.log; then
  tail -30 target/bench/build.log; echo "bench: building the harnesses failed" >&2; exit 1
fi
wait $release_pid || { echo "bench: the release build failed" >&2; exit 1; }
wait $env_pid || { tail -30 target/bench/test-env.log; echo "bench: scripts/test-env.sh failed" >&2; exit 1; }
tail -1 target/bench/test-env.log
export DOCKHAND_BIN=$dist/release/dockhand
echo "bench: built in $(( $(date +%s) - started )) s (set-up included)"
out=target/bench
mkdir -p "$out"
rm -f "$out"/agent-idle.md "$out"/compare.md "$out"/compare-smoke.md "$out"/swap.md "$out"/agent-latency.md

run() { # name, extra args…
  local name=$1; shift
  cargo bench --quiet --bench "$name" -- $smoke "$@"
}

run agent idle >"$out/agent-idle.log" 2>&1 &
idle_pid=$!
# The idle window starts once its 100 containers are up; start the rest only then.
for _ in $(seq 1 600); do
  grep -q "idle window started" "$out/agent-idle.log" 2>/dev/null && break
  kill -0 $idle_pid 2>/dev/null || break
  sleep 1
done
echo "bench: idle agent measured in the background ($out/agent-idle.log)"
cmp=compare; [ -z "$smoke" ] || cmp=compare-smoke
run compare 2>&1 | tee "$out/compare.log" | grep --line-buffered '^bench:' || true
[ -s "$out/$cmp.md" ] || { tail -40 "$out/compare.log"; echo "bench: compare failed" >&2; exit 1; }
run swap >"$out/swap.log" 2>&1 || { tail -30 "$out/swap.log"; exit 1; }
echo "bench: swaps done"
run agent latency >"$out/agent-latency.log" 2>&1 || { tail -30 "$out/agent-latency.log"; exit 1; }
echo "bench: agent latency done; waiting for the idle window"
wait $idle_pid || { tail -30 "$out/agent-idle.log"; exit 1; }

report="$out/report.md"
{
  echo "# dockhand benchmarks"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) by \`./scripts/bench.sh $*\` in $(( $(date +%s) - started )) s (build and set-up included)."
  echo
  # compare's own heading and machine line open the report; the others follow without theirs.
  sed '1d' "$out/$cmp.md" | grep -v '^!\[scaling' || true
  echo '![scaling curves](compare.png)'
  echo
  sed -e '/^# /d' -e '/^Machine:/d' "$out"/swap.md
  sed -e '/^# /d' -e '/^Machine:/d' -e '/^report:/d' "$out"/agent-latency*.md
  sed -e '/^# /d' -e '/^Machine:/d' -e '/^report:/d' "$out"/agent-idle*.md
} >"$report"
[ -z "$smoke" ] || cp "$out/compare-smoke.png" "$out/compare.png"
if [ $keep = 1 ]; then
  cp "$report" bench-reports/latest.md
  cp "$out/compare.png" bench-reports/compare.png
  echo "bench: copied to bench-reports/latest.md and bench-reports/compare.png"
fi
echo "bench: report $report, plot $out/compare.png ($(( $(date +%s) - started )) s in all)"
}

main "$@"
