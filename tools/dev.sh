#!/usr/bin/env bash
# dexloop's set-up, demo and test entry points. Works on a fresh Debian 12 machine: installs the
# system packages it needs (FFmpeg development libraries, GoogleTest, the ffmpeg tool the tests use to
# make videos), a virtual environment with torch pinned to the local CPU build, and dexloop itself.
#
#   bash tools/dev.sh demo     build everything, then load the shipped LeRobot dataset and print an item
#   bash tools/dev.sh test     build everything, then run the C++ tests (ctest) and pytest
#   bash tools/dev.sh setup    only build
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${DEXLOOP_VENV:-$ROOT/.venv}
export PIP_CONSTRAINT=$ROOT/.ci/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK=1

SYSTEM_PACKAGES=(libavformat-dev libavcodec-dev libavutil-dev libswscale-dev pkg-config libgtest-dev ffmpeg g++)

log() { printf '\033[1m[dexloop]\033[0m %s\n' "$*"; }

ensure_system_packages() {
  local missing=()
  for package in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  log "installing system packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_python_env() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV"
    python3 -m venv "$VENV"
  fi
  # Build tools first: dexloop is built without build isolation so the extension compiles against
  # the environment's own nanobind and incremental rebuilds reuse build/.
  "$VENV/bin/pip" install -q "torch==2.13.0" "scikit-build-core>=0.10" "nanobind>=2.4" cmake ninja
  log "building dexloop (C++ core and Python extension)"
  "$VENV/bin/pip" install -q --no-build-isolation -e ".[dev]"
}

build_cpp_tests() {
  log "building the C++ tests"
  "$VENV/bin/cmake" -S . -B build/cpp -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_MAKE_PROGRAM="$VENV/bin/ninja" >/dev/null
  "$VENV/bin/cmake" --build build/cpp
}

setup() {
  ensure_system_packages
  ensure_python_env
}

case "${1:-}" in
  setup)
    setup
    ;;
  demo)
    setup
    "$VENV/bin/python" examples/01_load_dataset.py
    ;;
  test)
    setup
    build_cpp_tests
    log "C++ tests"
    "$VENV/bin/ctest" --test-dir build/cpp --output-on-failure
    log "Python tests"
    "$VENV/bin/python" -m pytest -q
    ;;
  *)
    sed -n '2,9p' "$0"
    exit 2
    ;;
esac
