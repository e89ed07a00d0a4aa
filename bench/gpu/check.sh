#!/usr/bin/env bash
# GPU check, for a machine with a GPU and nvcc but maybe no network and no Deno:
#   1. builds both native libraries (CUDA for sm_80 and sm_90a),
#   2. runs the kernel and FFI tests with the cuda backend live,
#   3. benchmarks our CUDA kernels against the cpu backend (correctness) and PyTorch (speed),
#      printing each figure as it is measured and a table at the end,
#   4. times the bundled model on the ts, cpu and cuda backends (last: the first to lose).
# From the repository root: `bash bench/gpu/pack.sh` here, carry [".gpu"], then on the GPU machine
# `source .gpu/env.sh && bash bench/gpu/check.sh`. Options: --quick (1024-sized problems); --sparse
# (issue 4 only, for a short device lease: the kernel, FFI and sparse tests, then SparseGPT and the
# routed layer against their PyTorch peers; no dense-kernel rows, no model throughput); --routed
# (after the build only the routed layer's rows, its 2:4 rows twice with default and tuned plans
# alternating); --quik (issue 25 only: the QUIK kernel tests with cuda live, then the QUIK rows
# against torch bf16 and int8 GEMMs). Writes $OUT/gpu_bench.json when OUT is set. Without a GPU,
# tests/ffi/gpu_check_test.ts runs gpu_check.ts --tiny on the CUDA emulator (deno task test).
set -uo pipefail
cd "$(dirname "$0")/../.."
quick="" sparse="" routed="" quik=""
for a in "$@"; do
  case $a in
  --quick) quick=--quick ;;
  --sparse) sparse=--sparse ;;
  --routed) routed=--routed ;;
  --quik) quik=--quik ;;
  -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
  *) echo "check.sh: unknown option '$a', expected --quick, --sparse, --routed or --quik" >&2 && exit 2 ;;
  esac
done
export NO_COLOR=1
# cuBLAS/cuSOLVER/cuSPARSELt: the CUDA toolkit's, or the ones PyTorch ships
for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, s, "lib") for p in nvidia.__path__ for s in os.listdir(p)))' 2>/dev/null); do
  if compgen -G "$d/libcublas.so*" >/dev/null || compgen -G "$d/libcusolver.so*" >/dev/null ||
    compgen -G "$d/libcusparseLt.so*" >/dev/null; then
    export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
  fi
done
# bench/gpu/pack.sh's copy of the npm packages the check imports, used as it is (no network there)
deno_flags=""
if [ -d .gpu/node_modules ] && [ ! -e node_modules ]; then
  # "manual" in this throwaway copy's deno.json reaches the deno processes that tests spawn too
  cp -a .gpu/node_modules node_modules && deno_flags="--no-check" &&
    sed -i 's/"nodeModulesDir": "auto"/"nodeModulesDir": "manual"/' deno.json
fi
# no GPU: fail at once and say so (it used to run on, print "torch peers failed" and an uncaught
# BackendUnavailableError, and exit 0)
if ! nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null; then
  echo "check.sh: no GPU here (nvidia-smi finds none); run it on a machine with one" >&2
  exit 1
fi
echo "== build"
LMKIT_BUILD_EMU=0 bash ffi/build.sh --force || exit 1
if [ -n "$routed" ]; then # build, then the routed layer's rows alone: no tests, no peers
  deno run $deno_flags --no-prompt --allow-read --allow-env --allow-ffi=ffi/build bench/gpu/gpu_check.ts --routed $quick
  exit
fi
if [ -n "$quik" ]; then # build, the QUIK tests with cuda live (tensor-core layouts on hardware), rows
  echo "== QUIK tests (cuda live)"
  timeout 300 deno test $deno_flags --no-prompt --allow-read --allow-write --allow-env --allow-ffi=ffi/build --allow-run \
    tests/kernels/quik_matmul_test.ts tests/quant/quik_linear_cuda_test.ts 2>&1 | tail -30
  tests=${PIPESTATUS[0]}
  python3 bench/gpu/torch_peers.py $quick --quik --out /tmp/lmkit_peers.json >/dev/null || echo "torch peers failed"
  deno run $deno_flags --no-prompt --allow-read --allow-write --allow-env --allow-ffi=ffi/build bench/gpu/gpu_check.ts \
    --quik --peers /tmp/lmkit_peers.json ${OUT:+--out "$OUT/gpu_bench.json"} $quick || tests=1
  exit $tests
fi
echo "== tests (cuda live)"
model_tests=tests/model # the bundled model on cuda, passed four times already: left out by --sparse
[ -n "$sparse" ] && model_tests=""
# a kernel that hangs on a real GPU must not spend the whole lease: the tests get 5 minutes
timeout 300 deno test $deno_flags --no-prompt --allow-read --allow-write --allow-env --allow-ffi=ffi/build --allow-run tests/kernels tests/ffi \
  $model_tests tests/sparse 2>&1 | grep -v ' ok ' | tail -60
tests=${PIPESTATUS[0]}
echo "== PyTorch peers"
python3 bench/gpu/torch_peers.py $quick $sparse --out /tmp/lmkit_peers.json >/dev/null || echo "torch peers failed"
echo "== lmkit cuda bench"
deno run $deno_flags --no-prompt --allow-read --allow-write --allow-env --allow-ffi=ffi/build bench/gpu/gpu_check.ts \
  --peers /tmp/lmkit_peers.json ${OUT:+--out "$OUT/gpu_bench.json"} $quick $sparse || tests=1
[ -n "$sparse" ] && exit $tests
# last: measured four times already (bench/gpu/RESULTS.md), so a short device lease loses it first
echo "== model throughput (tokens/s; ts, cpu and cuda backends)"
deno bench $deno_flags --no-prompt --allow-read=data --allow-ffi --allow-env bench/model_bench.ts 2>&1 | grep -A8 "tokens/s per case"
exit $tests
