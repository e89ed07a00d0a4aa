#!/usr/bin/env bash
# The cuda kernel tests on the CUDA emulator built under ThreadSanitizer (EMU_SANITIZE=thread into
# ffi/build/emu-tsan/): every GPU thread is a TSan fiber ordered only by barriers, warp exchanges
# and block ends, so two threads of a kernel that touch the same memory without a barrier between
# them are reported, even where the emulator's fixed schedule happens to give the right answer.
# Stops at the first race (exit code 66). Skipped, with a line saying so, where libtsan is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
tsan=$(readlink -f "$(${CXX:-c++} -print-file-name=libtsan.so 2>/dev/null)" 2>/dev/null || true)
if [ ! -f "$tsan" ]; then
  echo "race check skipped: ThreadSanitizer's runtime (libtsan) is not installed"
  exit 0
fi
out=ffi/build/emu-tsan
EMU_SANITIZE=thread bash ffi/emu/build.sh "$out"
# LD_LIBRARY_PATH: TSan's dlopen interceptor hides the library's $ORIGIN from the loader
LMKIT_CUDA_EMU=emu-tsan LD_LIBRARY_PATH="$out" LD_PRELOAD="$tsan" \
  TSAN_OPTIONS="ignore_noninstrumented_modules=1 halt_on_error=1 exitcode=66" \
  deno test --no-prompt --allow-read --allow-write --allow-env --allow-ffi=ffi/build --allow-run \
  --filter cuda tests/kernels tests/sparse/sparse_expert_cuda_test.ts tests/sparse/sparsegpt_test.ts
