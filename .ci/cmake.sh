#!/usr/bin/env bash
# CI for C++ users: build csrc/ into libvatt_ops with CMake against the active environment's libtorch, then run
# the C++ test with ctest. Run it inside the environment vatt is installed in (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
cmake -S . -B "$build" "${generator[@]}" \
  -DCMAKE_PREFIX_PATH="$(python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')" > "$build/configure.log" \
  || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure
