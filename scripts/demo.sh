#!/usr/bin/env bash
# dockhand's main job on the embedded default (desired-state/): sets up the local test
# environment, pushes the demo image, then plan → apply → status → plan (no changes).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/test-env.sh
cargo build --release --quiet --example push_demo_image --bin dockhand
pinned=$(./target/release/examples/push_demo_image)
dockhand=./target/release/dockhand
src=(--source . --path desired-state)
if ! grep -qF "$pinned" desired-state/stacks/demo.yaml; then
  # The demo image is built from this host's /bin/busybox; another busybox build gives another
  # digest. Run on a copy pinned to what was pushed, and say so.
  tmp=$(mktemp -d)
  cp -r desired-state/. "$tmp/"
  sed -i -E "s#127\.0\.0\.1:5000/dockhand/demo:1\.0@sha256:[0-9a-f]{64}#$pinned#" "$tmp/stacks/demo.yaml"
  echo "note: this host's busybox gives $pinned; using a copy of desired-state/ pinned to it ($tmp)"
  src=(--source "$tmp" --path . --worktree)
fi
echo "== dockhand plan";   $dockhand plan "${src[@]}"
echo "== dockhand apply";  $dockhand apply "${src[@]}" --yes
echo "== dockhand status"; $dockhand status "${src[@]}"
echo "== dockhand plan (again: nothing to do)"
$dockhand plan "${src[@]}" --detailed-exitcode
echo "== the demo serves: $(curl -fsS http://127.0.0.1:18080/)"
