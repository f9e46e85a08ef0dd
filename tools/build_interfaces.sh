#!/usr/bin/env bash
# Build a ROS 2 interface package (ament_cmake + rosidl) against the ROS 2 wheels
# in a virtual environment and install it into a prefix.
#   tools/build_interfaces.sh PACKAGE_DIR BUILD_DIR INSTALL_PREFIX [VENV]
# VENV defaults to the project's .venv. On a ROS workstation use colcon instead.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 3 ] || { echo "usage: $0 PACKAGE_DIR BUILD_DIR INSTALL_PREFIX [VENV]" >&2; exit 2; }
src=$(cd "$1" && pwd); build=$2; prefix=$3; venv=${4:-$root/.venv}
[ -f "$src/package.xml" ] || { echo "build_interfaces: $src has no package.xml" >&2; exit 2; }

export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" AMENT_PREFIX_PATH="$prefix:$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
rm -rf "$build"; mkdir -p "$build"; cd "$build"
# The prefix is searched too, so packages installed there by an earlier call
# (an interface package depending on another) are found.
cmake "$src" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DCMAKE_PREFIX_PATH="$venv;$prefix" -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DPython3_EXECUTABLE="$venv/bin/python" \
  -DCMAKE_PROJECT_INCLUDE="$root/tools/cmake/wheel_python_include_fix.cmake"
cmake --build . -j "$(nproc)"
cmake --install .
