/**
 * Bindings to `ffi/build/liblmkit_mpi.so`, the communicator over Open MPI (`ffi/mpi/lmkit_mpi.h`).
 *
 * Every collective is bound twice: `lk_mpi_X` blocks the calling thread, `lk_mpi_X_async` is the
 * same C function as a Deno `nonblocking` symbol (it runs on a worker thread and returns a
 * Promise). The C side runs calls in the order of the ticket each one is given, so the two kinds
 * may be mixed, provided every call is made (dispatched) when its ticket is taken. Only buffers and numbers cross the boundary: `--allow-ffi=ffi/build` is
 * the only permission needed.
 *
 * @module
 */

/** The ABI version this binding was written for (`LK_MPI_ABI_VERSION`). */
export const MPI_ABI_VERSION = 1;

/** Status codes (`ffi/include/lmkit.h`, plus `LK_ECOMM` of `ffi/mpi/lmkit_mpi.h`). */
export const MpiStatus = {
  OK: 0,
  ESHAPE: 1,
  EARG: 2,
  EBACKEND: 4,
  ENOMEM: 5,
  ECOMM: 7,
} as const;

const collectives = {
  lk_mpi_finalize: { parameters: ["f64", "buffer", "i32"], result: "i32" },
  lk_mpi_configure: { parameters: ["f64", "f64", "f64", "buffer", "i32"], result: "i32" },
  lk_mpi_barrier: { parameters: ["f64", "buffer", "i32"], result: "i32" },
  lk_mpi_allreduce_f32: { parameters: ["f64", "buffer", "f64", "buffer", "i32"], result: "i32" },
  lk_mpi_allreduce_f64: { parameters: ["f64", "buffer", "f64", "buffer", "i32"], result: "i32" },
  lk_mpi_reduce_scatter_f32: {
    parameters: ["f64", "buffer", "f64", "buffer", "f64", "buffer", "i32"],
    result: "i32",
  },
  lk_mpi_bcast: { parameters: ["f64", "buffer", "f64", "i32", "buffer", "i32"], result: "i32" },
  lk_mpi_allgather: {
    parameters: ["f64", "buffer", "f64", "buffer", "f64", "buffer", "i32"],
    result: "i32",
  },
  lk_mpi_allgatherv: {
    parameters: ["f64", "buffer", "f64", "buffer", "f64", "buffer", "i32"],
    result: "i32",
  },
  lk_mpi_alltoall: {
    parameters: ["f64", "buffer", "f64", "buffer", "f64", "buffer", "i32"],
    result: "i32",
  },
  lk_mpi_alltoallv: {
    parameters: ["f64", "buffer", "f64", "buffer", "f64", "buffer", "f64", "buffer", "i32"],
    result: "i32",
  },
} as const;

type Collectives = typeof collectives;
type Async<T> = {
  [K in keyof T as `${K & string}_async`]: T[K] & { name: K; nonblocking: true };
};

function asyncTwins<T extends Record<string, Deno.ForeignFunction>>(table: T): Async<T> {
  const out: Record<string, Deno.ForeignFunction> = {};
  for (const [name, def] of Object.entries(table)) {
    out[`${name}_async`] = { ...def, name, nonblocking: true };
  }
  return out as Async<T>;
}

const symbols = {
  lk_abi_version: { parameters: ["buffer", "f64"], result: "i32" },
  lk_last_error: { parameters: ["buffer", "i32"], result: "i32" },
  lk_info: { parameters: ["buffer", "i32"], result: "i32" },
  lk_mpi_init: { parameters: ["f64", "buffer", "f64"], result: "i32" },
  lk_mpi_abort: { parameters: ["i32"], result: "i32" },
  lk_mpi_take: { parameters: ["f64", "buffer", "f64"], result: "i32" },
  ...collectives,
  ...asyncTwins(collectives as Collectives),
} as const;

/** The MPI library's symbols (blocking, and `*_async` nonblocking twins of the collectives). */
export type MpiLib = Deno.DynamicLibrary<typeof symbols>["symbols"];

/** The path of the built library. */
export const MPI_LIBRARY_PATH: string = new URL("../build/liblmkit_mpi.so", import.meta.url)
  .pathname;

let loaded: { lib: MpiLib | null; reason: string } | undefined;

/**
 * The MPI library, or null with the reason it cannot be loaded (no `--allow-ffi=ffi/build`, not
 * built, or built for another ABI). Loading it does not start MPI.
 */
export function mpiLibrary(): { lib: MpiLib | null; reason: string } {
  if (loaded) return loaded;
  const path = MPI_LIBRARY_PATH;
  if (Deno.permissions.querySync({ name: "ffi", path }).state !== "granted") {
    return loaded = { lib: null, reason: `no --allow-ffi=ffi/build permission to load '${path}'` };
  }
  let lib: MpiLib;
  try {
    lib = Deno.dlopen(path, symbols).symbols as MpiLib;
  } catch (e) {
    const msg = (e as Error).message;
    return loaded = {
      lib: null,
      reason: /No such file/.test(msg)
        ? `'${path}' is not built (install Open MPI, e.g. \`apt-get install openmpi-bin ` +
          "libopenmpi-dev`, then run `deno task build`)"
        : `cannot load '${path}': ${msg}`,
    };
  }
  const v = new Int32Array(1);
  if (lib.lk_abi_version(v, 1) !== 0 || v[0] !== MPI_ABI_VERSION) {
    return loaded = {
      lib: null,
      reason: `'${path}' has ABI version ${v[0]}, expected ${MPI_ABI_VERSION} (rebuild it)`,
    };
  }
  return loaded = { lib, reason: "" };
}

const decoder = new TextDecoder();

/** The NUL-terminated string in `buf`. */
export function cString(buf: Uint8Array): string {
  const end = buf.indexOf(0);
  return decoder.decode(buf.subarray(0, end < 0 ? buf.length : end));
}

/** The calling thread's last error message (`lk_last_error`). */
export function mpiLastError(lib: MpiLib): string {
  const buf = new Uint8Array(1024);
  lib.lk_last_error(buf, buf.length);
  return cString(buf);
}

/** The library's self-description (`lk_info`): version of MPI, rank, size, thread level, … */
export function mpiInfo(lib: MpiLib): Record<string, unknown> {
  const buf = new Uint8Array(2048);
  lib.lk_info(buf, buf.length);
  return JSON.parse(cString(buf));
}
