#!/usr/bin/env bash
# Set up octo_ros on a fresh machine: .venv with the pinned requirements (ROS 2
# Kilted wheels, CPU torch, ...), the interface packages built with cmake and
# installed into the venv, and octo_ros installed editable.
#
# Idempotent: every step records a stamp of its inputs under .venv/.octo_ros/
# and is skipped while the stamp matches, so a second run takes a second.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
stamps="$venv/.octo_ros"
python=${PYTHON:-python3.11}

die() { echo "bootstrap: error: $*" >&2; exit 1; }
say() { echo "bootstrap: $*"; }

command -v "$python" >/dev/null 2>&1 || python=python3
command -v "$python" >/dev/null 2>&1 || die "Python 3.11 not found (set PYTHON=/path/to/python3.11)"
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || die "Python 3.11 is required (the ROS 2 Kilted wheels are built for cp311); $python is $("$python" --version 2>&1)"
command -v cmake >/dev/null 2>&1 || die "cmake not found: install it (e.g. apt-get install cmake)"
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || die "no C compiler found: install gcc (e.g. apt-get install build-essential)"
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || die "no C++ compiler found: install g++ (e.g. apt-get install build-essential)"

# stamp_ok NAME FILES... : true when the stamp NAME matches the hash of FILES
digest() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { local name=$1; shift; [ -f "$stamps/$name" ] && [ "$(cat "$stamps/$name")" = "$(digest "$@")" ]; }
stamp_set() { local name=$1; shift; mkdir -p "$stamps"; digest "$@" > "$stamps/$name"; }

if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  "$python" -m venv "$venv" || die "could not create a virtual environment (install python3.11-venv)"
fi

reqs=("$root/requirements.txt" "$root/requirements-ros-wheels.txt" "$root/constraints.txt")
if ! stamp_ok requirements "${reqs[@]}"; then
  say "installing pinned requirements (first time: a few minutes)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements.txt" \
    -r "$root/requirements-ros-wheels.txt" -c "$root/constraints.txt" \
    || die "pip could not install requirements.txt and requirements-ros-wheels.txt"
  stamp_set requirements "${reqs[@]}"
fi

# Interface packages: the project's own and the stand-in for Interbotix's.
build_interfaces() {
  local src=$1 name
  name=$(basename "$src")
  local inputs=("$src/package.xml" "$src/CMakeLists.txt" "$root/tools/build_interfaces.sh" "$root/tools/cmake/wheel_python_include_fix.cmake" "$root/requirements-ros-wheels.txt")
  mapfile -t -O ${#inputs[@]} inputs < <(find "$src/msg" "$src/srv" -type f 2>/dev/null | sort)
  if stamp_ok "$name" "${inputs[@]}"; then return; fi
  say "building $name with cmake"
  local log="$root/build/$name.log"
  mkdir -p "$root/build"
  bash "$root/tools/build_interfaces.sh" "$src" "$root/build/$name" "$venv" "$venv" > "$log" 2>&1 \
    || { tail -n 40 "$log" >&2; die "building $name failed (full log: $log)"; }
  stamp_set "$name" "${inputs[@]}"
}
build_interfaces "$root/octo_ros_msgs"
build_interfaces "$root/tools/standins/interbotix_xs_msgs"

if ! stamp_ok octo_ros "$root/setup.py" "$root/setup.cfg"; then
  say "installing octo_ros (editable)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$root" \
    || die "pip could not install octo_ros"
  stamp_set octo_ros "$root/setup.py" "$root/setup.cfg"
fi
say "ready ($venv)"
