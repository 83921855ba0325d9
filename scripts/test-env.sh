#!/usr/bin/env bash
# Brings up what dockhand's demo and tests need on a Debian host (run as root):
# a Docker Engine, busybox-static (test images are built from it) and a local registry on
# 127.0.0.1:5000. Idempotent: what already runs is left alone.
set -euo pipefail
REGISTRY_ADDR=${DOCKHAND_TEST_REGISTRY:-127.0.0.1:5000}
STATE=${DOCKHAND_TEST_STATE:-/var/tmp/dockhand-test-env}
mkdir -p "$STATE"

need_pkgs=()
command -v docker-registry >/dev/null || need_pkgs+=(docker-registry)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v curl >/dev/null || need_pkgs+=(curl)
if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null; then need_pkgs+=(docker.io); fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "test-env: installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "test-env: no Docker Engine answers; starting dockerd"
  nohup dockerd >"$STATE/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "test-env: dockerd did not start; see $STATE/dockerd.log" >&2; exit 1; }
fi

if ! curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then
  echo "test-env: starting docker-registry on $REGISTRY_ADDR"
  mkdir -p "$STATE/registry"
  cat >"$STATE/registry.yml" <<CFG
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $STATE/registry}
  delete: {enabled: true}
http:
  addr: $REGISTRY_ADDR
CFG
  nohup docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 &
  for _ in $(seq 1 30); do curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && break; sleep 0.5; done
  curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null || { echo "test-env: registry did not start; see $STATE/registry.log" >&2; exit 1; }
fi
echo "test-env: docker $(docker version --format '{{.Server.Version}}'), registry http://$REGISTRY_ADDR, busybox $(/bin/busybox | head -1 | awk '{print $2}')"
