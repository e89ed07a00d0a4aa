#!/usr/bin/env bash
# Builds the native libraries into ffi/build/: the C library always, the MPI communicator when
# mpicc is on PATH, the CUDA library when nvcc
# is on PATH (even without a GPU), and the CUDA emulator (ffi/build/emu/) when a C++ compiler is.
# Rebuilds only what changed. Usage: bash ffi/build.sh [--force]
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p build
force=${1:-}
case $force in
"" | --force) ;;
*) echo "build.sh: unknown option '$force', expected --force or nothing" >&2 && exit 2 ;;
esac
stale() { # stale OUTPUT INPUTS...: true when OUTPUT is missing or older than any input
  local out=$1; shift
  [ "$force" = "--force" ] || [ ! -e "$out" ] || [ -n "$(find "$@" -newer "$out" 2>/dev/null | head -1)" ]
}
bash cpu/build.sh $force build/liblmkit_cpu.so
# the MPI communicator (lib/comm's mpi backend), where Open MPI's mpicc is installed
bash mpi/build.sh $force build/liblmkit_mpi.so
command -v "${MPICC:-mpicc}" >/dev/null 2>&1 ||
  echo "build: mpicc not found; the mpi communicator is not built (apt-get install openmpi-bin libopenmpi-dev)" >&2
if command -v nvcc >/dev/null 2>&1 && compgen -G "cuda/*.cu" >/dev/null; then
  if stale build/liblmkit_cuda.so cuda include; then
    echo "build: nvcc → ffi/build/liblmkit_cuda.so (sm_80, sm_90a)"
    nvcc -O3 -std=c++17 -shared -Xcompiler -fPIC -cudart static \
      -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90a,code=sm_90a \
      -o build/liblmkit_cuda.so.tmp cuda/*.cu -ldl -lpthread
    mv build/liblmkit_cuda.so.tmp build/liblmkit_cuda.so
  fi
elif ! command -v nvcc >/dev/null 2>&1; then
  echo "build: nvcc not found; the cuda backend is not built" >&2
fi
# the CUDA emulator (the .cu compiled as C++ for the CPU, with mock cuBLAS/cuSOLVER/cuSPARSELt),
# which lets `deno task test` run the cuda tests without a GPU (LMKIT_CUDA_EMU=1)
# (LMKIT_BUILD_EMU=0 skips it: bench/gpu/check.sh, on a leased GPU, has no use for it)
if [ "${LMKIT_BUILD_EMU:-1}" != 0 ] && command -v "${CXX:-c++}" >/dev/null 2>&1 && compgen -G "cuda/*.cu" >/dev/null; then
  bash emu/build.sh $force build/emu
fi
