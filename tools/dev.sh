#!/usr/bin/env bash
# dexloop's set-up, demo and test entry points. Works on a fresh Debian 12 machine: installs the
# system packages it needs (FFmpeg development libraries, GoogleTest, the ffmpeg tool the tests use to
# make videos), a virtual environment with torch pinned to the local CPU build, and dexloop itself.
# The commands are listed in usage() below (`bash tools/dev.sh` prints them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${DEXLOOP_VENV:-$ROOT/.venv}
PYTHON=${DEXLOOP_PYTHON:-python3}
# Tests whose modules import no torch (bus driver, motors API, simulator, control loop, command line,
# encoder).
TORCHLESS_TESTS=(tests/bus tests/motors tests/sim tests/control tests/cli tests/video/test_video_encoder.py
  tests/test_errors_table.py)
export PIP_CONSTRAINT=$ROOT/.ci/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK=1

# libosmesa6: MuJoCo's offscreen rendering on a CPU (MUJOCO_GL=osmesa) for the simulated arm's cameras.
SYSTEM_PACKAGES=(libavformat-dev libavcodec-dev libavutil-dev libswscale-dev pkg-config libgtest-dev ffmpeg g++
  clang-format libosmesa6)
# Installed without their recommended packages: the headless browser that tests the dataset viewer's
# pages needs none of chromium's desktop extras (notification daemon, printing, sandbox helper).
SYSTEM_PACKAGES_NO_RECOMMENDS=(chromium)

usage() {
  cat <<'EOF'
usage: bash tools/dev.sh <command>
  demo             build everything, load the shipped LeRobot dataset and print an item, record
                   demonstrations from a simulated SO-101 servo bus and read them back, then the learning
                   workflow in MuJoCo: record expert demonstrations, train ACT, evaluate it, export it to
                   ONNX, deploy it through a policy server and the C++ control loop on the simulated arm,
                   write a report
  test             build everything, then run the C++ tests (ctest) and pytest
  setup            only build
  lint             ruff check, ruff format --check and clang-format --dry-run -Werror over the repo;
                   the error classes are checked to be what errors.toml gives
  test-torchless   build and run the tests that need no torch, in a venv without it
                   (for a Python with no local CPU torch wheel: DEXLOOP_PYTHON=python3.12)
EOF
}

log() { printf '\033[1m[dexloop]\033[0m %s\n' "$*"; }

ensure_system_packages() {
  local missing=() missing_bare=()
  for package in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  for package in "${SYSTEM_PACKAGES_NO_RECOMMENDS[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing_bare+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && [ ${#missing_bare[@]} -eq 0 ] && return
  log "installing system packages: ${missing[*]} ${missing_bare[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ ${#missing_bare[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing_bare[@]}" >/dev/null
  fi
}

create_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV ($("$PYTHON" --version))"
    "$PYTHON" -m venv "$VENV"
  fi
}

ensure_python_env() {
  create_venv
  # Build tools first: dexloop is built without build isolation so the extension compiles against
  # the environment's own nanobind and incremental rebuilds reuse build/.
  "$VENV/bin/pip" install -q "torch==2.13.0" "scikit-build-core>=0.10" "nanobind>=2.4" cmake ninja
  log "building dexloop (C++ core and Python extension)"
  build_dexloop -e ".[dev]"
}

# pip install "$@" of dexloop. pip -v prints the whole CMake run; only its steps and Ninja's [n/total]
# lines are shown, so a build of a minute shows progress without burying it. The full output is kept
# in build/.
build_dexloop() {
  local build_log="$ROOT/build/pip-install.log" status
  mkdir -p "$ROOT/build"
  set +e
  "$VENV/bin/pip" install -v --no-build-isolation "$@" 2>&1 | tee "$build_log" |
    { grep --line-buffered -E '^[[:space:]]*(\*\*\* |\[[0-9]+/[0-9]+\] )' | sed -u 's/^[[:space:]]*/  /' || true; }
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$build_log" >&2
    log "the build failed; full output in $build_log"
    exit "$status"
  fi
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

# dexloop and every dependency but torch (read from pyproject.toml), and the test tools.
ensure_torchless_env() {
  create_venv
  "$VENV/bin/pip" install -q "scikit-build-core>=0.10" "nanobind>=2.4" cmake ninja
  local requirements
  requirements=$("$VENV/bin/python" - <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
wanted = project["dependencies"] + project["optional-dependencies"]["test"]
print("\n".join(r for r in wanted if re.split(r"[<>=!~ \[]", r, maxsplit=1)[0] != "torch"))
PY
)
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $requirements
  log "building dexloop without torch ($("$VENV/bin/python" --version))"
  build_dexloop --no-deps -e .
}

case "${1:-}" in
  setup)
    setup
    ;;
  demo)
    setup
    "$VENV/bin/python" examples/01_load_dataset.py
    "$VENV/bin/python" examples/03_record_on_simulated_arm.py
    "$VENV/bin/python" examples/04_learn_on_simulated_arm.py
    ;;
  test)
    setup
    build_cpp_tests
    log "C++ tests"
    "$VENV/bin/ctest" --test-dir build/cpp --output-on-failure
    log "Python tests"
    "$VENV/bin/python" -m pytest -q
    ;;
  lint)
    ensure_system_packages
    create_venv
    "$VENV/bin/pip" install -q ruff
    log "ruff check, ruff format --check, clang-format, error classes"
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    git ls-files -z '*.cpp' '*.hpp' | xargs -0 clang-format --dry-run -Werror
    "$VENV/bin/python" tools/generate_errors.py --check
    ;;
  test-torchless)
    ensure_system_packages
    ensure_torchless_env
    log "Python tests that need no torch: ${TORCHLESS_TESTS[*]}"
    "$VENV/bin/python" -m pytest -q "${TORCHLESS_TESTS[@]}"
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
