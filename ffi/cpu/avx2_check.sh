#!/usr/bin/env bash
# The CPU tests against the C library built without AVX-512 (ffi/build/cpu-avx2/, loaded through
# LMKIT_CPU_BUILD=cpu-avx2): the 256-bit paths (6-row GEMM slivers, 16-row bitmap slivers decoded
# row by row, scalar bitmap decoding) that the main build never runs on a machine with AVX-512.
# On a machine without AVX-512 this is the main build again.
set -euo pipefail
usage="usage: bash ffi/cpu/avx2_check.sh (no options; see the comment at its top)"
case $# in
0) ;;
*) if [ "$1" = -h ] || [ "$1" = --help ]; then echo "$usage" && exit 0; fi
  echo "avx2_check.sh: unexpected '$1'; $usage" >&2 && exit 2 ;;
esac
cd "$(dirname "$0")/../.."
bash ffi/cpu/build.sh ffi/build/cpu-avx2/liblmkit_cpu.so -mno-avx512f
LMKIT_CPU_BUILD=cpu-avx2 deno test --no-prompt --allow-read --allow-write --allow-env \
  --allow-ffi=ffi/build --allow-run tests/kernels tests/sparse tests/model tests/comm/quantize_test.ts
