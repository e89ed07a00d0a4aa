#!/usr/bin/env bash
# The CPU tests against the C library built with AddressSanitizer and UndefinedBehaviorSanitizer
# (ffi/build/cpu-asan/, loaded through LMKIT_CPU_BUILD=cpu-asan): a read or write out of bounds
# (the typed arrays Deno passes come from malloc, so their ends are guarded too), a use after free,
# a signed overflow, a shift out of range, a null pointer given to memset ... in ffi/cpu/*.c stops
# the run at once with a report naming the line (exit code 1), even where the wrong access happens
# to leave the right answer. Deno is not instrumented, so ASan's runtime is preloaded; leak
# detection is off (V8 keeps its memory to exit). -O1: -O2 builds longer for no faster tests.
# The test files reach every line of ffi/cpu/*.c that the CPU tests reach (measured with gcov),
# on the paths the main build takes here (the 256-bit paths of ffi/cpu/avx2_check.sh are not
# rerun). Left out for time, as they call the same kernels again on the bundled model:
# tests/quant/checkpoint_test.ts, tests/sparse/expansion_test.ts, tests/model/golden_test.ts,
# tests/train/{torch,backward}_test.ts and quik_test.ts's quikModel (45 s alone); and the script
# tests, whose scripts cannot read LMKIT_CPU_BUILD. --allow-ffi names only this build, so the CUDA
# library (or its emulator) is never loaded under ASan: the cuda tests are ignored.
# Skipped, with a line saying so, where libasan is missing.
set -euo pipefail
usage="usage: bash ffi/cpu/sanitize_check.sh (no options; see the comment at its top)"
case $# in
0) ;;
*) if [ "$1" = -h ] || [ "$1" = --help ]; then echo "$usage" && exit 0; fi
  echo "sanitize_check.sh: unexpected '$1'; $usage" >&2 && exit 2 ;;
esac
cd "$(dirname "$0")/../.."
asan=$(readlink -f "$(${CC:-cc} -print-file-name=libasan.so 2>/dev/null)" 2>/dev/null || true)
if [ ! -f "$asan" ]; then
  echo "sanitizer check skipped: AddressSanitizer's runtime (libasan) is not installed"
  exit 0
fi
bash ffi/cpu/build.sh ffi/build/cpu-asan/liblmkit_cpu.so -O1 -g -fno-omit-frame-pointer \
  -fsanitize=address,undefined -fno-sanitize-recover=undefined
run() { # run DENO-TEST-ARGS...: deno test with the sanitized library
  LMKIT_CPU_BUILD=cpu-asan LD_PRELOAD="$asan" ASAN_OPTIONS="detect_leaks=0 halt_on_error=1" \
    UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" deno test --no-prompt --allow-read \
    --allow-write --allow-env --allow-ffi=ffi/build/cpu-asan --allow-run "$@"
}
run tests/ffi/cpu_abi_test.ts tests/kernels tests/sparse/sparsegpt_test.ts \
  tests/sparse/sparse_expert_test.ts tests/quant/gptq_test.ts tests/model/model_test.ts \
  tests/train/train_test.ts tests/comm/quantize_test.ts
# tests/quant/quik_test.ts but for quikModel
run --filter "/^quik(OutlierCount|WeightScales|Linear)/" tests/quant/quik_test.ts
