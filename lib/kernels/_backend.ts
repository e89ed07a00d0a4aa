// Private helpers shared by the kernel files: backend resolution and argument checks.
import {
  type Backend,
  check,
  cuda,
  type CudaLib,
  type DevArray,
  DeviceBuffer,
  selectBackend,
} from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";

export type { Backend };

/** Options every kernel takes. */
export interface KernelOptions {
  /** Force a backend; default: `LMKIT_BACKEND`, else the best available. */
  backend?: Backend;
}

export function resolve(options: KernelOptions): Backend {
  return selectBackend(options.backend);
}

/** The zeroed output `Y[m,n]` of `X[m,k]·Wᵀ` for a sparse `W[n,k]`; throws when k differs. */
export function spmmOutput(x: Matrix, w: { rows: number; cols: number }): Matrix {
  if (x.cols !== w.cols) {
    throw new ShapeError(
      `Cannot multiply X[${x.rows}×${x.cols}] by Wᵀ for W[${w.rows}×${w.cols}]: inner sizes differ`,
    );
  }
  return new Matrix(x.rows, w.rows, new Float32Array(x.rows * w.rows));
}

/** Bit `c` of a bitmap row whose bytes start at `row` (bit c % 8 of byte c / 8): 1 where column c is stored. */
export function bitAt(bits: Uint8Array, row: number, c: number): number {
  return (bits[row + (c >> 3)]! >> (c & 7)) & 1;
}

/**
 * Field `q` of a row of `width`-bit fields packed from byte `row` on, least significant first (the
 * position of an N:M weight's kept entry q in its group).
 */
export function fieldAt(bytes: Uint8Array, row: number, q: number, width: number): number {
  const bit = q * width;
  return (bytes[row + (bit >> 3)]! >> (bit & 7)) & ((1 << width) - 1);
}

/**
 * Column `o` of `Y = X·Wᵀ` from one row of W given as `q` (column, value) pairs: `cols[j]` and
 * `val[p0 + j]` (the ts references of the compressed forms).
 */
export function rowTimesTokens(
  x: Matrix,
  y: Matrix,
  o: number,
  cols: Int32Array | Uint16Array,
  q: number,
  val: Float32Array,
  p0: number,
): void {
  const k = x.cols, n = y.cols, xd = x.data;
  for (let i = 0; i < x.rows; i++) {
    let s = 0;
    for (let j = 0; j < q; j++) s += val[p0 + j]! * xd[i * k + cols[j]!]!;
    y.data[i * n + o] = s;
  }
}

/**
 * Runs one cuda entry point on device copies of `bufs` (every buffer uploaded, so that outputs
 * which accumulate start from their host contents) and downloads those listed in `outs`: the
 * cuda path of a kernel whose data lives on the host (the training ops; a GPU-resident training
 * path keeps the buffers on the device instead).
 */
export function runOnDevice(
  bufs: DevArray[],
  outs: readonly number[],
  call: (lib: CudaLib, handles: number[]) => number,
): void {
  const lib = cuda(), dev = DeviceBuffer.fromAll(bufs);
  try {
    check(lib, call(lib, dev.map((d) => d.handle)));
    for (const i of outs) dev[i]!.download(bufs[i]!);
  } finally {
    for (const d of dev) d.dispose();
  }
}

/** Throws unless `a` holds exactly `n` elements (the named argument of `fn`). */
export function expectLength(fn: string, name: string, a: { length: number }, n: number): void {
  if (a.length !== n) {
    throw new ShapeError(`${fn}: ${name} has ${a.length} elements, expected ${n}`);
  }
}
