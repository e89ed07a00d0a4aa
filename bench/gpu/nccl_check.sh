#!/usr/bin/env bash
# NCCL check (issue 22, item 2), for a machine with one GPU, nvcc and NCCL, maybe no network and
# no Deno:
#   1. builds the CUDA library (nccl.cu included; no emulator),
#   2. finds NCCL: $LMKIT_NCCL if set, else the system's libnccl.so.2, else the nvidia-nccl wheel
#      that PyTorch brings (its lib folder is put on LD_LIBRARY_PATH here),
#   3. runs tests/comm/nccl_test.ts with the cuda backend live against the real NCCL (world size
#      1; the emulator-only cases are ignored there),
#   4. times an in-place all-reduce of 16 MiB at world size 1 (bench/gpu/nccl_check.ts) and
#      prints a table last (and $OUT/nccl_bench.json when OUT is set).
# From the repository root: `bash bench/gpu/pack.sh` here (Deno and npm packages for a machine
# without them), carry [".gpu"], then on the GPU machine `bash bench/gpu/nccl_check.sh` (it
# sources .gpu/env.sh itself when deno is not on PATH). Exit status: 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in
"") ;;
-h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
*) echo "nccl_check.sh: unexpected argument '$1'; it takes none" >&2 && exit 2 ;;
esac
export NO_COLOR=1
if ! command -v deno >/dev/null 2>&1; then
  if [ -f .gpu/env.sh ]; then
    # shellcheck disable=SC1091
    source .gpu/env.sh
  else
    echo "nccl_check.sh: no deno on PATH and no .gpu/env.sh: run 'bash bench/gpu/pack.sh' where Deno is, and carry .gpu" >&2
    exit 1
  fi
fi
if ! nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null; then
  echo "nccl_check.sh: no GPU here (nvidia-smi finds none); run it on a machine with one" >&2
  exit 1
fi
# bench/gpu/pack.sh's npm packages, as bench/gpu/check.sh uses them (the NCCL test imports none,
# but the tree's deno.json names them)
deno_flags=""
if [ -d .gpu/node_modules ] && [ ! -e node_modules ]; then
  cp -a .gpu/node_modules node_modules && deno_flags="--no-check" &&
    sed -i 's/"nodeModulesDir": "auto"/"nodeModulesDir": "manual"/' deno.json
fi
# NCCL (and cuBLAS, which the tests' buffers do not need but the library reports): the wheel's
for d in $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, s, "lib") for p in nvidia.__path__ for s in os.listdir(p)))' 2>/dev/null); do
  if compgen -G "$d/libnccl.so*" >/dev/null || compgen -G "$d/libcublas.so*" >/dev/null; then
    export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
  fi
done
echo "== NCCL: ${LMKIT_NCCL:-$(ldconfig -p 2>/dev/null | grep -m1 -o '/[^ ]*libnccl.so.2' || echo "libnccl.so.2 via LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}")}"
echo "== build"
LMKIT_BUILD_EMU=0 bash ffi/build.sh --force || exit 1
echo "== tests/comm/nccl_test.ts (cuda live, real NCCL)"
timeout 300 deno test $deno_flags --no-prompt --allow-read --allow-write --allow-env --allow-ffi=ffi/build --allow-run \
  tests/comm/nccl_test.ts 2>&1 | tail -30
tests=${PIPESTATUS[0]}
echo "== all-reduce timing (world size 1)"
timeout 120 deno run $deno_flags --no-prompt --allow-read --allow-write --allow-env --allow-ffi=ffi/build \
  bench/gpu/nccl_check.ts ${OUT:+--out "$OUT/nccl_bench.json"} || tests=1
exit $tests
