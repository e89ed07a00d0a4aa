#!/usr/bin/env bash
# Builds the CUDA emulator into ffi/build/emu/: ffi/cuda/*.cu compiled as C++ against cuda_emu.h
# (liblmkit_cuda.so), the emulator's runtime (libcudaemu.so) and the mock cuBLAS, cuSOLVER,
# cuSPARSELt and NCCL (libcublas.so.13, libcusolver.so.12, libcusparseLt.so.0, libnccl.so.2,
# the last from nccl_mock.cpp), found through $ORIGIN before
# any real library. Needs only a C++17 compiler. Usage: bash ffi/emu/build.sh [--force] OUT_DIR [CU_DIR]
# (CU_DIR: where the .cu sources are, default ffi/cuda; ffi/emu/seeded_bugs.ts builds altered copies)
# Does nothing when OUT_DIR's library is newer than every source (unless --force); otherwise builds
# in OUT_DIR.tmp and then replaces OUT_DIR, so that an interrupted build leaves no half library.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
force=""
[ "${1:-}" = --force ] && force=1 && shift
dest=$1
cu_dir=${2:-$here/../cuda}
if [ -z "$force" ] && [ -e "$dest/liblmkit_cuda.so" ] &&
  [ -z "$(find "$cu_dir" "$here" "$here/../include" -newer "$dest/liblmkit_cuda.so" | head -1)" ]; then
  exit 0
fi
CXX=${CXX:-c++}
echo "build: $CXX${EMU_SANITIZE:+ -fsanitize=$EMU_SANITIZE} → $dest/ (the CUDA emulator)"
out=$dest.tmp
rm -rf "$out"
mkdir -p "$out"
flags=(-std=c++17 -O1 -g -march=native -fPIC -fno-strict-aliasing -Wall -Wno-unused-function -Wno-unused-parameter -Wno-parentheses -I"$here")
rpath=(-Wl,--disable-new-dtags,-rpath,'$ORIGIN')
# the .cu sources as C++: CUDA and CUB includes dropped (cuda_emu.h stands in), and each
# `kernel<<<config>>>(args)` rewritten as `emu::Cfg(config).launch("kernel", kernel, args)`; the
# internal .cuh headers the same way, copied next to them so that `#include "x.cuh"` finds them
rewrite() {
  perl -0777 -pe '
    s{^#include <(cuda_bf16\.h|cuda_runtime\.h|library_types\.h|cub/[^>]+)>\n}{}mg;
    s{\b([A-Za-z_]\w*(?:<[\w:]+>)?)\s*<<<(.*?)>>>\s*\(}{emu::Cfg($2).launch("$1", $1, }sg;
  ' "$1" >"$2"
}
for cu in "$cu_dir"/*.cu; do rewrite "$cu" "$out/$(basename "${cu%.cu}").emu.cpp"; done
for h in "$cu_dir"/*.cuh; do
  if [ -e "$h" ]; then rewrite "$h" "$out/$(basename "$h")"; fi
done
# EMU_SANITIZE=thread: the emulated library under ThreadSanitizer (GPU threads as TSan fibers; the
# runtime itself stays uninstrumented and annotates); load with LD_PRELOAD=libtsan.so.2
kflags=()
if [ "${EMU_SANITIZE:-}" = thread ]; then
  kflags=(-fsanitize=thread)
  flags+=(-DEMU_TSAN)
fi
$CXX "${flags[@]}" -shared -o "$out/libcudaemu.so" "$here/runtime.cpp"
$CXX "${flags[@]}" -O2 -shared -o "$out/libcublas.so.13" "$here/mocks.cpp" -L"$out" -lcudaemu "${rpath[@]}"
cp "$out/libcublas.so.13" "$out/libcusolver.so.12"
cp "$out/libcublas.so.13" "$out/libcusparseLt.so.0"
# the mock NCCL (a world of one rank), which ffi/cuda/nccl.cu finds as libnccl.so.2 through $ORIGIN
$CXX "${flags[@]}" -O2 -shared -o "$out/libnccl.so.2" "$here/nccl_mock.cpp" -L"$out" -lcudaemu "${rpath[@]}"
$CXX "${flags[@]}" "${kflags[@]}" -include cuda_emu.h -shared -o "$out/liblmkit_cuda.so" "$out"/*.emu.cpp \
  -L"$out" -lcudaemu \
  -ldl -lpthread "${rpath[@]}"
rm -rf "$dest"
mv "$out" "$dest"
