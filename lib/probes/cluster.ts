/**
 * Agglomerative (hierarchical) clustering as scikit-learn's `AgglomerativeClustering` (no
 * connectivity) computes it: scipy's `linkage` by the nearest-neighbour chain, merges sorted by
 * height (stable) and renumbered (node n + k is the k-th merge), then sklearn's `_hc_cut` to read
 * off `nClusters` labels, with its heap, so that the label numbers match scikit-learn's too.
 * The unsupervised mass-mean probe uses it with 2 clusters, cosine distance, complete linkage.
 *
 * @module
 */
import { ShapeError } from "../core/errors.ts";
import { _checkCount, _checkVector } from "./_check.ts";

/** Linkage criterion: the distance between two clusters. */
export type Linkage = "complete" | "average";

/** Options of {@linkcode agglomerativeClustering}. */
export interface ClusterOptions {
  /** Number of clusters (default 2). */
  nClusters?: number;
  /** "cosine" (default; 1 − cos, no zero rows allowed) or "euclidean". */
  metric?: "cosine" | "euclidean";
  /** "complete" (default: the largest pairwise distance) or "average" (the mean). */
  linkage?: Linkage;
}

/** One merge of the dendrogram, scipy's row of Z: children ids (a < b), height, size. */
export interface Merge {
  /** Smaller child id (ids < n are points, n + k is the k-th merge). */
  a: number;
  /** Larger child id. */
  b: number;
  /** Linkage distance at which the two were merged. */
  height: number;
  /** Points in the merged cluster. */
  size: number;
}

/**
 * The full dendrogram of the n rows of the row-major n×d `x`, as scipy's `linkage(x, method,
 * metric)` returns it (n − 1 merges, sorted by height).
 *
 * @example
 * ```ts
 * import { linkageTree } from "./cluster.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const z = linkageTree(new Float64Array([0, 1, 5]), 3, 1, { metric: "euclidean" });
 * assertEquals(z.map((m) => [m.a, m.b, m.height, m.size]), [[0, 1, 1, 2], [2, 3, 5, 3]]);
 * ```
 */
export function linkageTree(
  x: Float64Array,
  n: number,
  d: number,
  options: ClusterOptions = {},
): Merge[] {
  return tree("linkageTree", x, n, d, options);
}

function tree(fn: string, x: Float64Array, n: number, d: number, options: ClusterOptions): Merge[] {
  if (!(x instanceof Float64Array)) throw new TypeError(`${fn}: x is not a Float64Array`);
  if (n === 0) throw new ShapeError(`${fn}: x has no rows, expected at least 1`);
  _checkCount(fn, "n", n);
  _checkCount(fn, "d", d);
  if (x.length !== n * d) {
    throw new ShapeError(`${fn}: x has ${x.length} values, expected n·d = ${n}·${d} = ${n * d}`);
  }
  _checkVector(fn, "x", x);
  const metric = options.metric ?? "cosine", linkage = options.linkage ?? "complete";
  if (metric !== "cosine" && metric !== "euclidean") {
    throw new RangeError(
      `${fn}: metric "${metric}" is not supported, expected "cosine" or "euclidean"`,
    );
  }
  if (linkage !== "complete" && linkage !== "average") {
    throw new RangeError(
      `${fn}: linkage "${linkage}" is not supported, expected "complete" or "average"`,
    );
  }
  // full distance matrix (n² f64)
  const D = new Float64Array(n * n), norms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[i * d + j]! ** 2;
    norms[i] = Math.sqrt(s);
    if (metric === "cosine" && s === 0) {
      throw new RangeError(`${fn}: row ${i} of x is the zero vector, which has no cosine distance`);
    }
  }
  for (let i = 0; i < n; i++) {
    for (let k = i + 1; k < n; k++) {
      let v = 0;
      if (metric === "cosine") {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += x[i * d + j]! * x[k * d + j]!;
        v = 1 - Math.min(1, Math.max(-1, dot / (norms[i]! * norms[k]!)));
      } else {
        for (let j = 0; j < d; j++) v += (x[i * d + j]! - x[k * d + j]!) ** 2;
        v = Math.sqrt(v);
      }
      D[i * n + k] = v, D[k * n + i] = v;
    }
  }
  // nearest-neighbour chain (scipy's nn_chain, same scan order and tie rule)
  const size = new Float64Array(n).fill(1), chain = new Int32Array(n);
  const raw: { x: number; y: number; h: number }[] = [];
  let len = 0;
  for (let k = 0; k < n - 1; k++) {
    if (len === 0) {
      len = 1;
      for (let i = 0; i < n; i++) {
        if (size[i]! > 0) {
          chain[0] = i;
          break;
        }
      }
    }
    let xi = 0, yi = 0, cur = Infinity;
    for (;;) {
      xi = chain[len - 1]!;
      if (len > 1) yi = chain[len - 2]!, cur = D[xi * n + yi]!;
      else cur = Infinity;
      for (let i = 0; i < n; i++) {
        if (size[i] === 0 || i === xi) continue;
        const v = D[xi * n + i]!;
        if (v < cur) cur = v, yi = i;
      }
      if (len > 1 && yi === chain[len - 2]) break;
      chain[len++] = yi;
    }
    len -= 2;
    if (xi > yi) [xi, yi] = [yi, xi];
    const nx = size[xi]!, ny = size[yi]!;
    raw.push({ x: xi, y: yi, h: cur });
    size[xi] = 0, size[yi] = nx + ny;
    for (let i = 0; i < n; i++) {
      if (size[i] === 0 || i === yi) continue;
      const dx = D[i * n + xi]!, dy = D[i * n + yi]!;
      const v = linkage === "complete" ? Math.max(dx, dy) : (nx * dx + ny * dy) / (nx + ny);
      D[i * n + yi] = v, D[yi * n + i] = v;
    }
  }
  // stable sort by height, then union-find relabelling (scipy's `label`)
  const order = raw.map((_, i) => i).sort((a, b) => raw[a]!.h - raw[b]!.h || a - b);
  const parent = new Int32Array(2 * n - 1).map((_, i) => i), sz = new Int32Array(2 * n - 1).fill(1);
  const find = (v: number): number => {
    let r = v;
    while (parent[r] !== r) r = parent[r]!;
    while (parent[v] !== r) [parent[v], v] = [r, parent[v]!];
    return r;
  };
  return order.map((o, k) => {
    const m = raw[o]!, rx = find(m.x), ry = find(m.y), id = n + k;
    parent[rx] = id, parent[ry] = id, sz[id] = sz[rx]! + sz[ry]!;
    return { a: Math.min(rx, ry), b: Math.max(rx, ry), height: m.h, size: sz[id]! };
  });
}

/**
 * Cluster labels 0 … nClusters−1 of the n rows of the row-major n×d `x`, numbered as
 * scikit-learn's `AgglomerativeClustering(n_clusters, metric, linkage).fit_predict(x)` numbers them.
 *
 * @example
 * ```ts
 * import { agglomerativeClustering } from "./cluster.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const x = new Float64Array([1, 0, 0.9, 0.1, -1, 0.05, -0.8, -0.1]);
 * assertEquals(Array.from(agglomerativeClustering(x, 4, 2)), [1, 1, 0, 0]);
 * ```
 */
export function agglomerativeClustering(
  x: Float64Array,
  n: number,
  d: number,
  options: ClusterOptions = {},
): Int32Array {
  const fn = "agglomerativeClustering";
  const k = options.nClusters ?? 2;
  if (!Number.isInteger(k) || k < 1 || (Number.isInteger(n) && n >= 1 && k > n)) {
    throw new RangeError(`${fn}: nClusters is ${k}, expected an integer in [1, ${n}]`);
  }
  const z = tree(fn, x, n, d, options);
  const labels = new Int32Array(n);
  if (k === 1 || n === 1) return labels;
  // sklearn's _hc_cut: a heap (Python heapq) of negated node ids
  const heap: number[] = [-(2 * n - 2)];
  for (let c = 0; c < k - 1; c++) {
    const m = z[-heap[0]! - n]!;
    heapPush(heap, -m.a);
    heapPushPop(heap, -m.b);
  }
  heap.forEach((negNode, label) => {
    const stack = [-negNode];
    while (stack.length > 0) {
      const v = stack.pop()!;
      if (v < n) labels[v] = label;
      else stack.push(z[v - n]!.a, z[v - n]!.b);
    }
  });
  return labels;
}

// CPython's heapq, verbatim in behaviour (item order inside the heap array decides the labels)
function siftDown(h: number[], start: number, pos: number): void {
  const item = h[pos]!;
  while (pos > start) {
    const parentPos = (pos - 1) >> 1, parent = h[parentPos]!;
    if (item < parent) {
      h[pos] = parent;
      pos = parentPos;
      continue;
    }
    break;
  }
  h[pos] = item;
}

function siftUp(h: number[], pos: number): void {
  const end = h.length, start = pos, item = h[pos]!;
  let child = 2 * pos + 1;
  while (child < end) {
    const right = child + 1;
    if (right < end && !(h[child]! < h[right]!)) child = right;
    h[pos] = h[child]!;
    pos = child;
    child = 2 * pos + 1;
  }
  h[pos] = item;
  siftDown(h, start, pos);
}

function heapPush(h: number[], item: number): void {
  h.push(item);
  siftDown(h, 0, h.length - 1);
}

function heapPushPop(h: number[], item: number): number {
  if (h.length > 0 && h[0]! < item) {
    const top = h[0]!;
    h[0] = item;
    siftUp(h, 0);
    return top;
  }
  return item;
}
