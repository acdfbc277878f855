#!/usr/bin/env bash
# Build Horovod 0.28.1 for the venv's PyTorch and install it, reusing a cached wheel.
#
#   setup/horovod.sh VENV
#
# Horovod's last release ships only as an sdist whose CMake asks for C++14, while PyTorch >= 2.1
# headers need C++17: the build patches CMAKE_CXX_STANDARD to 17 (see DEPENDENCIES.md). Built with
# Gloo and without MPI/TensorFlow/MXNet; on a CUDA node (nvcc on PATH) also with NCCL. The wheel is
# cached in $SETLIST_CACHE/wheels/<horovod, torch, python, cpu|nccl>/ and reused on later runs.
set -euo pipefail

VENV="$1"
PY="$VENV/bin/python"
CACHE="${SETLIST_CACHE:-$HOME/.cache/setlist}"
HOROVOD_VERSION=0.28.1

if "$PY" -c "import horovod.torch" 2>/dev/null; then
  echo "setup: horovod $HOROVOD_VERSION already in the venv"
  exit 0
fi

torch_version="$("$PY" -c 'import torch; print(torch.__version__)')"
py_version="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if command -v nvcc >/dev/null 2>&1; then ops=nccl; else ops=cpu; fi
key="horovod-$HOROVOD_VERSION-torch-$torch_version-py$py_version-$ops"
wheels="$CACHE/wheels/$key"

if ! ls "$wheels"/horovod-*.whl >/dev/null 2>&1; then
  echo "setup: building $key (about 7 minutes on 2 cores, once)"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  "$PY" -m pip install --quiet wheel "setuptools>=77" cmake
  "$PY" -m pip download --quiet --no-deps --no-binary :all: "horovod==$HOROVOD_VERSION" -d "$work"
  tar -xzf "$work"/horovod-"$HOROVOD_VERSION".tar.gz -C "$work"
  src="$work/horovod-$HOROVOD_VERSION"
  sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"
  grep -q "CMAKE_CXX_STANDARD 17" "$src/horovod/torch/CMakeLists.txt"
  gpu_flags=()
  [ "$ops" = nccl ] && gpu_flags=(HOROVOD_GPU_OPERATIONS=NCCL)
  mkdir -p "$wheels.tmp"
  env HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_WITH_GLOO=1 \
      HOROVOD_WITHOUT_MPI=1 MAKEFLAGS="-j$(nproc)" "${gpu_flags[@]}" \
      "$PY" -m pip wheel --no-build-isolation --no-deps -w "$wheels.tmp" "$src" > "$work/build.log" 2>&1 \
    || { tail -40 "$work/build.log" >&2; echo "setup: horovod build failed (log above)" >&2; exit 1; }
  rm -rf "$wheels"
  mv "$wheels.tmp" "$wheels"
fi
"$PY" -m pip install --quiet "$wheels"/horovod-*.whl
"$PY" -c "import horovod.torch as hvd; print('setup: horovod', hvd.__version__ if hasattr(hvd, '__version__') else '$HOROVOD_VERSION', 'gloo built:', hvd.gloo_built())"
