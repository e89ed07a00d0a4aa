/**
 * Bindings to the native kernel libraries (`ffi/build/liblmkit_cpu.so`,
 * `ffi/build/liblmkit_cuda.so`) and the choice of backend.
 *
 * Every native entry point returns an int32 status; {@linkcode check} turns a failure into the
 * matching error class with the message the C side wrote. Only typed-array buffers and numbers
 * cross the boundary, so `--allow-ffi=ffi/build` is the only permission the bindings need; without
 * it the `ts` backend is used.
 *
 * @module
 */
import { BackendUnavailableError, NumericalError, ShapeError } from "../lib/core/errors.ts";

/** A kernel implementation family. */
export type Backend = "ts" | "cpu" | "cuda";
/** The backends, best last. */
export const BACKENDS: readonly Backend[] = ["ts", "cpu", "cuda"];

const common = {
  lk_abi_version: { parameters: ["buffer", "f64"], result: "i32" },
  lk_last_error: { parameters: ["buffer", "i32"], result: "i32" },
  lk_info: { parameters: ["buffer", "i32"], result: "i32" },
} as const;

const cpuSymbols = {
  ...common,
  lk_cpu_set_blas: { parameters: ["i32"], result: "i32" },
  lk_cpu_matmul_f32: {
    parameters: ["buffer", "f64", "buffer", "f64", "buffer", "f64", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cpu_gram_f32: {
    parameters: ["buffer", "f64", "i32", "i32", "buffer", "f64", "f64", "f64"],
    result: "i32",
  },
  lk_cpu_gram_f64: {
    parameters: ["buffer", "f64", "i32", "i32", "buffer", "f64", "f64", "f64"],
    result: "i32",
  },
  lk_cpu_obs_prepare_f64: {
    parameters: ["buffer", "f64", "i32", "f64", "i32", "buffer", "f64"],
    result: "i32",
  },
  lk_cpu_topk_f32: {
    parameters: [
      "buffer",
      "f64",
      "i32",
      "i32",
      "i32",
      "i32",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
    ],
    result: "i32",
  },
  lk_cpu_attention_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cpu_swiglu_f32: {
    parameters: ["buffer", "f64", "buffer", "f64", "buffer", "f64", "f64"],
    result: "i32",
  },
  lk_cpu_sparsegpt_f64: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "f64",
      "i32",
      "i32",
      "buffer",
      "f64",
      "i32",
      "buffer",
      "f64",
    ],
    result: "i32",
  },
  lk_cpu_gptq_f64: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
    ],
    result: "i32",
  },
  lk_cpu_csr_matmul_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cpu_bsc_matmul_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cpu_bitmap_matmul_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cpu_nm_matmul_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cpu_quik_quantize_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cpu_quik_scales_f64: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cpu_quik_matmul_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cpu_quant_matmul_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cpu_threshold_f32: {
    parameters: [
      "buffer",
      "f64",
      "i32",
      "i32",
      "buffer",
      "f64",
      "i32",
      "buffer",
      "f64",
      "buffer",
      "f64",
    ],
    result: "i32",
  },
  lk_cpu_gemm_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f64",
    ],
    result: "i32",
  },
  lk_cpu_rmsnorm_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "f64",
    ],
    result: "i32",
  },
  lk_cpu_rmsnorm_bwd_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cpu_rope_f32: {
    parameters: ["buffer", "f64", "buffer", "f64", "buffer", "f64", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cpu_attention_bwd_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cpu_swiglu_bwd_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "f64",
    ],
    result: "i32",
  },
  lk_cpu_embedding_bwd_f32: {
    parameters: ["buffer", "f64", "buffer", "f64", "buffer", "f64", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cpu_cross_entropy_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "i32",
      "i32",
      "f64",
    ],
    result: "i32",
  },
  lk_cpu_adamw_f32: {
    parameters: [
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "buffer",
      "f64",
      "f64",
      "f64",
      "f64",
      "f64",
      "f64",
      "f64",
      "f64",
      "f64",
    ],
    result: "i32",
  },
  lk_cpu_cq_bytes: { parameters: ["f64", "i32", "i32", "i32", "buffer", "f64"], result: "i32" },
  lk_cpu_cq_quantize_f32: {
    parameters: ["buffer", "f64", "i32", "i32", "i32", "i32", "f64", "buffer", "f64"],
    result: "i32",
  },
  lk_cpu_cq_dequantize_f32: {
    parameters: ["buffer", "f64", "i32", "i32", "i32", "i32", "buffer", "f64"],
    result: "i32",
  },
} as const;

/**
 * The NCCL collectives of the CUDA library (ffi/cuda/nccl.cu), each bound twice: `lk_nccl_X`
 * blocks the calling thread, `lk_nccl_X_async` is the same C function as a Deno `nonblocking`
 * symbol (a worker thread; a Promise). The C side runs a communicator's calls in ticket order.
 */
const ncclCollectives = {
  lk_nccl_all_reduce: {
    parameters: ["i32", "f64", "i32", "f64", "f64", "i32", "buffer", "i32"],
    result: "i32",
  },
  lk_nccl_reduce_scatter: {
    parameters: ["i32", "f64", "i32", "f64", "f64", "i32", "f64", "f64", "i32", "buffer", "i32"],
    result: "i32",
  },
  lk_nccl_all_gather: {
    parameters: ["i32", "f64", "i32", "f64", "f64", "i32", "f64", "f64", "buffer", "i32"],
    result: "i32",
  },
  lk_nccl_all_to_all: {
    parameters: ["i32", "f64", "i32", "f64", "f64", "i32", "f64", "f64", "buffer", "i32"],
    result: "i32",
  },
  lk_nccl_broadcast: {
    parameters: ["i32", "f64", "i32", "f64", "f64", "i32", "buffer", "i32"],
    result: "i32",
  },
  lk_nccl_barrier: { parameters: ["i32", "f64", "buffer", "i32"], result: "i32" },
} as const;

type NcclAsync<T> = {
  [K in keyof T as `${K & string}_async`]: T[K] & { name: K; nonblocking: true };
};

function ncclAsync<T extends Record<string, Deno.ForeignFunction>>(table: T): NcclAsync<T> {
  const out: Record<string, Deno.ForeignFunction> = {};
  for (const [name, def] of Object.entries(table)) {
    out[`${name}_async`] = { ...def, name, nonblocking: true };
  }
  return out as NcclAsync<T>;
}

const cudaSymbols = {
  ...common,
  lk_cuda_device_count: { parameters: ["buffer", "f64"], result: "i32" },
  lk_cuda_alloc: { parameters: ["i32", "f64", "buffer", "f64"], result: "i32" },
  lk_cuda_free: { parameters: ["i32"], result: "i32" },
  lk_cuda_upload: { parameters: ["i32", "buffer", "f64"], result: "i32" },
  lk_cuda_download: { parameters: ["i32", "buffer", "f64"], result: "i32" },
  lk_cuda_matmul_f32: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cuda_gram_f32: { parameters: ["i32", "i32", "i32", "i32", "f64", "f64"], result: "i32" },
  lk_cuda_gram_f64: { parameters: ["i32", "i32", "i32", "i32", "f64", "f64"], result: "i32" },
  lk_cuda_obs_prepare_f64: {
    parameters: ["i32", "i32", "f64", "i32", "buffer", "f64"],
    result: "i32",
  },
  lk_cuda_topk_f32: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cuda_threshold_f32: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cuda_convert: { parameters: ["i32", "i32"], result: "i32" },
  lk_cuda_matmul_bf16: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cuda_sp24_create: { parameters: ["i32", "i32", "i32", "buffer", "f64"], result: "i32" },
  lk_cuda_sp24_free: { parameters: ["i32"], result: "i32" },
  lk_cuda_sp24_matmul: { parameters: ["i32", "i32", "i32", "i32"], result: "i32" },
  lk_cuda_sp24_set_search: { parameters: ["i32"], result: "i32" },
  lk_cuda_bitmap_dense_bf16: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cuda_routed_bf16: {
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "buffer",
      "f64",
      "i32",
      "i32",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cuda_sparsegpt_f64: {
    parameters: ["i32", "i32", "i32", "i32", "f64", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cuda_sync: { parameters: ["buffer", "f64"], result: "i32" },
  lk_cuda_gemm_f32: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "f64"],
    result: "i32",
  },
  lk_cuda_rmsnorm_f32: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "i32", "f64"],
    result: "i32",
  },
  lk_cuda_rmsnorm_bwd_f32: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cuda_rope_f32: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cuda_attention_bwd_f32: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cuda_swiglu_bwd_f32: { parameters: ["i32", "i32", "i32", "i32", "i32", "f64"], result: "i32" },
  lk_cuda_quant_matmul_f32: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cuda_quik_quantize_f32: {
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cuda_quik_matmul_f32: {
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  lk_cuda_embedding_bwd_f32: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lk_cuda_cross_entropy_f32: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "i32", "f64"],
    result: "i32",
  },
  lk_cuda_adamw_f32: {
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "f64",
      "f64",
      "f64",
      "f64",
      "f64",
      "f64",
      "f64",
      "f64",
    ],
    result: "i32",
  },
  lk_nccl_library: { parameters: ["buffer", "i32"], result: "i32" },
  lk_nccl_get_unique_id: { parameters: ["buffer", "f64"], result: "i32" },
  lk_nccl_init: {
    parameters: ["buffer", "f64", "i32", "i32", "f64", "i32", "buffer", "f64"],
    result: "i32",
  },
  lk_nccl_info: { parameters: ["i32", "buffer", "f64"], result: "i32" },
  lk_nccl_destroy: { parameters: ["i32", "f64", "buffer", "i32"], result: "i32" },
  ...ncclCollectives,
  ...ncclAsync(ncclCollectives),
  lk_cuda_cq_quantize_f32: {
    parameters: ["i32", "f64", "i32", "i32", "i32", "i32", "f64", "i32"],
    result: "i32",
  },
  lk_cuda_cq_dequantize_f32: {
    parameters: ["i32", "f64", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
} as const;

/** The CPU library's symbols. */
export type CpuLib = Deno.DynamicLibrary<typeof cpuSymbols>["symbols"];
/** The CUDA library's symbols. */
export type CudaLib = Deno.DynamicLibrary<typeof cudaSymbols>["symbols"];

/** The folder that holds the built libraries. */
export const BUILD_DIR: string = decodeURIComponent(
  new URL("./build/", import.meta.url).pathname,
);

interface Loaded<T> {
  lib: T | null;
  reason: string;
}

/** The folder under ffi/build of the emulated CUDA library, or undefined when not emulating. */
function emulatorDir(): string | undefined {
  const desc = { name: "env", variable: "LMKIT_CUDA_EMU" } as const;
  if (Deno.permissions.querySync(desc).state !== "granted") return undefined;
  const v = Deno.env.get("LMKIT_CUDA_EMU");
  if (v === "1") return "emu";
  // another build of the emulator (ffi/emu/seeded_bugs.ts builds into ffi/build/emu-seeded)
  return v && /^emu-[\w-]+$/.test(v) ? v : undefined;
}

/**
 * True when `LMKIT_CUDA_EMU=1` (and readable): the cuda backend is then the CUDA emulator,
 * `ffi/build/emu/liblmkit_cuda.so` (ffi/emu/cuda_emu.h), which runs the CUDA library's host code
 * and kernels on the CPU so that machines without a GPU can test them. It is for tests only: it
 * emulates neither speed nor the tensor cores.
 */
export function cudaEmulated(): boolean {
  return emulatorDir() !== undefined;
}

/**
 * The folder under ffi/build of another build of the CPU library (`LMKIT_CPU_BUILD=cpu-avx2`:
 * built without AVX-512 by ffi/cpu/avx2_check.sh, for tests), or undefined for the main build.
 */
function cpuBuildDir(): string | undefined {
  const desc = { name: "env", variable: "LMKIT_CPU_BUILD" } as const;
  if (Deno.permissions.querySync(desc).state !== "granted") return undefined;
  const v = Deno.env.get("LMKIT_CPU_BUILD");
  if (!v) return undefined;
  if (!/^cpu-[\w-]+$/.test(v)) {
    throw new RangeError(`LMKIT_CPU_BUILD '${v}' is not a folder name of the form cpu-NAME`);
  }
  return v;
}

function load<S extends Deno.ForeignLibraryInterface>(
  name: string,
  symbols: S,
): Loaded<Deno.DynamicLibrary<S>["symbols"]> {
  const isCuda = name === "lmkit_cuda", sub = isCuda ? emulatorDir() : cpuBuildDir();
  const path = `${BUILD_DIR}${sub ? `${sub}/` : ""}lib${name}.so`;
  if (Deno.permissions.querySync({ name: "ffi", path }).state !== "granted") {
    return { lib: null, reason: `no --allow-ffi=ffi/build permission to load '${path}'` };
  }
  try {
    return { lib: Deno.dlopen(path, symbols).symbols, reason: "" };
  } catch (e) {
    const missing = e instanceof Error && /No such file/.test(e.message);
    return {
      lib: null,
      reason: missing
        ? `'${path}' is not built (run ${
          !isCuda
            ? sub ? "`bash ffi/cpu/avx2_check.sh`" : "`deno task build`"
            : `\`deno task build\` where ${sub ? "a C++ compiler" : "nvcc"} is installed`
        })`
        : `cannot load '${path}': ${(e as Error).message}`,
    };
  }
}

let cpuLoaded: Loaded<CpuLib> | undefined;
let cudaLoaded: Loaded<CudaLib> | undefined;
let cudaRaw: Loaded<CudaLib> | undefined;
let cudaDevices = 0;

/** The CPU library, or null with a reason when it cannot be loaded. */
export function cpuLibrary(): Loaded<CpuLib> {
  return cpuLoaded ??= load("lmkit_cpu", cpuSymbols);
}

/** The CUDA library when it loads and sees at least one device, else null with a reason. */
export function cudaLibrary(): Loaded<CudaLib> {
  if (cudaLoaded) return cudaLoaded;
  const l = cudaRaw ??= load("lmkit_cuda", cudaSymbols);
  if (l.lib) {
    const out = new Int32Array(1);
    const st = l.lib.lk_cuda_device_count(out, 1);
    cudaDevices = st === 0 ? out[0] as number : 0;
    if (cudaDevices === 0) {
      cudaLoaded = {
        lib: null,
        reason: st === 0 ? "no CUDA device is visible" : lastError(l.lib),
      };
      return cudaLoaded;
    }
  }
  return cudaLoaded = l;
}

/**
 * The CUDA library's symbols where it is built, even with no device visible (null otherwise).
 * Every entry point checks its arguments and handles before it touches the device, so a machine
 * without a GPU can test those checks; running kernels needs {@linkcode cuda}.
 */
export function cudaLibraryWithoutDevice(): CudaLib | null {
  return (cudaRaw ??= load("lmkit_cuda", cudaSymbols)).lib;
}

const decoder = new TextDecoder();

function readString(fn: (buf: Uint8Array, cap: number) => number): string {
  const buf = new Uint8Array(1024);
  fn(buf, buf.length);
  const end = buf.indexOf(0);
  return decoder.decode(buf.subarray(0, end < 0 ? buf.length : end));
}

function lastError(lib: CpuLib | CudaLib): string {
  return readString((b, c) => lib.lk_last_error(b, c));
}

/** The library's self-description (JSON from `lk_info`). */
export function libraryInfo(lib: CpuLib | CudaLib): Record<string, unknown> {
  return JSON.parse(readString((b, c) => lib.lk_info(b, c)));
}

/** Status codes of `ffi/include/lmkit.h`. */
export const Status = {
  OK: 0,
  ESHAPE: 1,
  EARG: 2,
  ENUMERICAL: 3,
  EBACKEND: 4,
  ENOMEM: 5,
  EHANDLE: 6,
} as const;

/** Throws the error class matching `status` with the library's message; returns on 0. */
export function check(lib: CpuLib | CudaLib, status: number): void {
  if (status === Status.OK) return;
  const msg = lastError(lib);
  switch (status) {
    case Status.ESHAPE:
      throw new ShapeError(msg);
    case Status.EARG:
    case Status.EHANDLE:
      throw new RangeError(msg);
    case Status.ENUMERICAL:
      throw new NumericalError(msg);
    case Status.EBACKEND:
      throw new BackendUnavailableError(msg);
    default:
      throw new Error(`${msg} (status ${status})`);
  }
}

/** Which backends can run here, each with the reason when it cannot. */
export function availableBackends(): Record<Backend, { ok: boolean; reason: string }> {
  const cpu = cpuLibrary(), cuda = cudaLibrary();
  return {
    ts: { ok: true, reason: "" },
    cpu: { ok: cpu.lib !== null, reason: cpu.reason },
    cuda: { ok: cuda.lib !== null, reason: cuda.reason },
  };
}

function envBackend(): string | undefined {
  const desc = { name: "env", variable: "LMKIT_BACKEND" } as const;
  if (Deno.permissions.querySync(desc).state !== "granted") return undefined;
  return Deno.env.get("LMKIT_BACKEND") || undefined;
}

let warnedTs = false;

/**
 * Says once per process, on stderr, that the native kernels did not load and why, instead of
 * silently running the pure-TypeScript kernels (several times slower). Not said when the ts
 * backend was asked for by name (`LMKIT_BACKEND=ts`, `--backend ts`).
 */
function warnTsFallback(reason: string): void {
  if (warnedTs) return;
  warnedTs = true;
  const fix = reason.startsWith("no --allow-ffi")
    ? `add --allow-ffi=${BUILD_DIR.replace(/\/$/, "")} to the deno run command`
    : / is not built /.test(reason)
    ? "build them with `deno task build`"
    : "see why above";
  console.error(
    `warning: lmkit's native kernels are not loaded (${reason}), so the pure-TypeScript kernels run, several times slower: ${fix}; to choose them on purpose, set LMKIT_BACKEND=ts with --allow-env=LMKIT_BACKEND (or pass backend: "ts")`,
  );
}

/**
 * The backend to use: `requested` if given, else `LMKIT_BACKEND` (when readable), else the best
 * available (cuda, then cpu, then ts). A backend that was asked for by name but cannot run
 * throws {@linkcode BackendUnavailableError}.
 */
export function selectBackend(requested?: string): Backend {
  const want = requested ?? envBackend();
  const avail = availableBackends();
  if (want === undefined) {
    if (avail.cuda.ok || avail.cpu.ok) return avail.cuda.ok ? "cuda" : "cpu";
    warnTsFallback(avail.cpu.reason);
    return "ts";
  }
  if (!(BACKENDS as readonly string[]).includes(want)) {
    throw new RangeError(`Unknown backend '${want}': expected one of ts, cpu, cuda`);
  }
  const b = want as Backend;
  if (!avail[b].ok) {
    throw new BackendUnavailableError(`Backend '${b}' is unavailable: ${avail[b].reason}`);
  }
  return b;
}

/** The loaded CPU library, or a {@linkcode BackendUnavailableError}. */
export function cpu(): CpuLib {
  const l = cpuLibrary();
  if (!l.lib) throw new BackendUnavailableError(`Backend 'cpu' is unavailable: ${l.reason}`);
  return l.lib;
}

/** The loaded CUDA library, or a {@linkcode BackendUnavailableError}. */
export function cuda(): CudaLib {
  const l = cudaLibrary();
  if (!l.lib) throw new BackendUnavailableError(`Backend 'cuda' is unavailable: ${l.reason}`);
  return l.lib;
}

/** Element types of device buffers, as numbered in lmkit.h. */
export const DeviceDType = { f32: 0, f64: 1, i32: 2, u8: 3, bf16: 4 } as const;
/** Host arrays that can move to and from device buffers (bf16 as raw Uint16 bits). */
export type DevArray = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

function dtypeOf(a: DevArray): keyof typeof DeviceDType {
  return a instanceof Float32Array
    ? "f32"
    : a instanceof Float64Array
    ? "f64"
    : a instanceof Int32Array
    ? "i32"
    : a instanceof Uint16Array
    ? "bf16"
    : "u8";
}

/**
 * A buffer in GPU memory, named by a handle of the CUDA library. Free it with `using` or
 * `dispose()`; data moves only through {@linkcode DeviceBuffer.upload} and
 * {@linkcode DeviceBuffer.download}.
 */
export class DeviceBuffer {
  /** The CUDA library's handle. */
  readonly handle: number;
  /** Element type. */
  readonly dtype: keyof typeof DeviceDType;
  /** Number of elements. */
  readonly length: number;
  #freed = false;
  static #live = 0;

  private constructor(handle: number, dtype: keyof typeof DeviceDType, length: number) {
    this.handle = handle;
    this.dtype = dtype;
    this.length = length;
    DeviceBuffer.#live++;
  }

  /** How many device buffers are allocated and not yet disposed (for leak checks). */
  static get live(): number {
    return DeviceBuffer.#live;
  }

  /** Allocates `length` elements of `dtype` on the device. */
  static alloc(dtype: keyof typeof DeviceDType, length: number): DeviceBuffer {
    const lib = cuda();
    const h = new Int32Array(1);
    check(lib, lib.lk_cuda_alloc(DeviceDType[dtype], length, h, 1));
    return new DeviceBuffer(h[0] as number, dtype, length);
  }

  /** Allocates a device copy of `host`. */
  static from(host: DevArray): DeviceBuffer {
    const b = DeviceBuffer.alloc(dtypeOf(host), host.length);
    try {
      b.upload(host);
    } catch (e) {
      b.dispose();
      throw e;
    }
    return b;
  }

  /** Device copies of every array of `hosts`, or none (those made are freed) when one fails. */
  static fromAll(hosts: readonly DevArray[]): DeviceBuffer[] {
    const dev: DeviceBuffer[] = [];
    try {
      for (const a of hosts) dev.push(DeviceBuffer.from(a));
    } catch (e) {
      for (const d of dev) d.dispose();
      throw e;
    }
    return dev;
  }

  /** Copies `host` (same element type and length) to the device. */
  upload(host: DevArray): void {
    this.#expect(host);
    check(cuda(), cuda().lk_cuda_upload(this.handle, host, host.byteLength));
  }

  /** Copies the device contents into `host` (same element type and length) and returns it. */
  download<T extends DevArray>(host: T): T {
    this.#expect(host);
    check(cuda(), cuda().lk_cuda_download(this.handle, host, host.byteLength));
    return host;
  }

  #expect(host: DevArray): void {
    if (this.#freed) throw new RangeError(`Device buffer ${this.handle} was already freed`);
    if (dtypeOf(host) !== this.dtype || host.length !== this.length) {
      throw new ShapeError(
        `Cannot copy ${host.length} ${
          dtypeOf(host)
        } elements to/from device buffer ${this.handle}: expected ${this.length} ${this.dtype}`,
      );
    }
  }

  /** Frees the device memory; later use throws. */
  dispose(): void {
    if (this.#freed) return;
    this.#freed = true;
    DeviceBuffer.#live--;
    check(cuda(), cuda().lk_cuda_free(this.handle));
  }

  /** For `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Waits for queued GPU work; returns milliseconds since the previous sync. */
export function cudaSync(): number {
  const ms = new Float64Array(1);
  check(cuda(), cuda().lk_cuda_sync(ms, 1));
  return ms[0] as number;
}
