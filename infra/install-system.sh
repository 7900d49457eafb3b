#!/usr/bin/env bash
# Installs the Debian packages Tributary's local services need, only if missing.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v dockerd >/dev/null || need+=(docker.io)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v haproxy >/dev/null || need+=(haproxy)
command -v docker-compose >/dev/null || need+=(docker-compose)
# The JavaScript example subscriber (docs/examples/js) runs in the tests.
command -v node >/dev/null || need+=(nodejs)
# Container images without a registry: a Debian root file system for their base (infra/local/images.py).
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v npm >/dev/null || need+=(npm)
# The desktop viewer's browser test (headless Chromium driven by selenium).
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# bench.faults jumps one worker's clock (libfaketime).
command -v faketime >/dev/null || need+=(faketime)
if ((${#need[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
