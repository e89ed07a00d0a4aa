/**
 * Toxicity statistics over the ranks of a {@linkcode Communicator}: the input is cut into
 * consecutive pieces, rank r reads the r-th run of them into its own {@linkcode ToxicityStats},
 * and rank 0 merges the partial statistics in rank order, which is the order of the input.
 *
 * The split ({@linkcode planPieces}): the input files, in order, are laid end to end and cut
 * into `size` runs of about equal weight (bytes; compressed bytes count 5× for gzip and 10× for
 * zstd, a rough guess of their expansion). A plain JSON-lines file can be cut anywhere: a cut
 * falls between lines, the lines that start in a rank's byte range are its, so the line that
 * crosses the cut belongs to the rank where it starts and is read whole. Compressed files and
 * CSV/TSV (whose quoted fields may hold newlines) are read whole by the rank that holds the
 * middle of their weight. A rank's pieces follow one another in the input.
 *
 * The merge is exact: counts are integers, sentiment sums are kept exactly (`partial.ts`),
 * communities, cells and reply-tree records are appended in the order they first occur and the
 * skip reasons in the order they first occur, so the merged statistics are those of one process
 * reading the input in order, and every table is the same to the last byte.
 *
 * Line numbers: a rank that starts inside a file counts lines from its first line; every rank
 * reports the lines (newlines) of each of its pieces, and an error is reported with the lines
 * of the same file's earlier pieces added, so it names the line in the file, as a single process
 * would. When several ranks fail, rank 0 reports the error that comes first in the input: the
 * one a single process would have stopped at.
 *
 * @module
 */
import type { Communicator } from "../comm/communicator.ts";
import { RankFailed, reviveError, type WireError, wireError } from "../comm/ranks.ts";
import { streamError } from "../io/text.ts";
import {
  type Comment,
  commentsFromJsonLines,
  type FieldMap,
  readComments,
  type SkipCounts,
} from "./comments.ts";
import { decodePartial, encodePartial } from "./partial.ts";
import type { ToxicityStats } from "./stats.ts";

/** An input file and its size in bytes. */
export interface InputFile {
  /** Path. */
  path: string;
  /** Bytes. */
  size: number;
}

/** A part of the input that one rank reads. */
export interface Piece {
  /** Position among all pieces, in input order. */
  index: number;
  /** Position of its file in the input list. */
  file: number;
  /** The file. */
  path: string;
  /** First byte of the range: the piece holds the lines that start in [start, end). */
  start: number;
  /** End of the range (exclusive). */
  end: number;
  /** The whole file, read by the reader of its format. */
  whole: boolean;
}

/** Whether a file can be cut into byte ranges at line boundaries (uncompressed JSON lines). */
export function splittable(path: string): boolean {
  return /\.(jsonl|ndjson|json)$/.test(path);
}

/** The weight of a file for balancing: its bytes, compressed ones counted 5× (gz) or 10× (zst). */
function weight(f: InputFile): number {
  return f.path.endsWith(".gz") ? 5 * f.size : f.path.endsWith(".zst") ? 10 * f.size : f.size;
}

/**
 * The pieces of each of `ranks` ranks (see the module doc): consecutive runs of the input of
 * about equal weight, in input order.
 *
 * @example Two files on three ranks
 * ```ts
 * import { planPieces } from "./dist.ts";
 * const plan = planPieces([{ path: "a.jsonl", size: 900 }, { path: "b.jsonl.gz", size: 60 }], 3);
 * // a.jsonl is cut at bytes 400 and 800; b.jsonl.gz (weight 300) goes whole to the last rank
 * if (plan[1]![0]!.start !== 400 || !plan[2]![1]!.whole) throw new Error("unexpected plan");
 * ```
 */
export function planPieces(files: readonly InputFile[], ranks: number): Piece[][] {
  if (!Number.isInteger(ranks) || ranks < 1) {
    throw new RangeError(`Cannot split the input between ${ranks} ranks`);
  }
  const plan: Piece[][] = Array.from({ length: ranks }, () => []);
  const total = files.reduce((s, f) => s + weight(f), 0);
  const bound = (r: number) => Math.floor((total * r) / ranks);
  let index = 0, at = 0;
  files.forEach((f, file) => {
    const w = weight(f);
    const add = (r: number, start: number, end: number, whole: boolean) =>
      plan[r]!.push({ index: index++, file, path: f.path, start, end, whole });
    if (!splittable(f.path)) {
      // the rank that holds the middle of its weight (the last one at the very end)
      const mid = at + w / 2;
      let r = 0;
      while (r < ranks - 1 && bound(r + 1) <= mid) r++;
      add(r, 0, f.size, true);
    } else {
      const cuts: [number, number, number][] = [];
      for (let r = 0; r < ranks; r++) {
        // bound(ranks) is the total weight
        const lo = Math.max(bound(r), at) - at, hi = Math.min(bound(r + 1), at + w) - at;
        if (hi > lo) cuts.push([r, lo, hi]);
      }
      if (cuts.length === 1) add(cuts[0]![0], 0, f.size, true);
      else for (const [r, lo, hi] of cuts) add(r, lo, hi, false);
    }
    at += w;
  });
  return plan;
}

/** The sizes of `paths` (a NotFound error for a missing one). */
export async function statInputs(paths: readonly string[]): Promise<InputFile[]> {
  const out: InputFile[] = [];
  for (const path of paths) out.push({ path, size: (await Deno.stat(path)).size });
  return out;
}

/** Options of {@linkcode readPiece}. */
export interface PieceReadOptions {
  /** Skip bad rows (counted in `skipped`) instead of failing on the first. */
  skipBadRows?: boolean;
  /** Receives the skip counts. */
  skipped?: SkipCounts;
  /** Called with the bytes of the piece read so far (compressed bytes for a compressed file). */
  onBytes?: (bytes: number) => void;
  /** Receives the newlines of a byte-range piece (the lines before the next piece of its file). */
  lines?: { count: number };
}

const CHUNK = 1 << 20;

/**
 * The bytes of the lines that start in [start, end) of `path`: from the first line start at or
 * after `start` (0, or just after a newline at byte start − 1 or later) through the newline that
 * ends the line holding byte end − 1 (or the end of the file).
 */
async function* rangeBytes(
  path: string,
  start: number,
  end: number,
  options: PieceReadOptions,
): AsyncGenerator<Uint8Array> {
  if (end <= start) return;
  const file = await Deno.open(path, { read: true });
  try {
    let pos = Math.max(0, start - 1), begun = start === 0, sent = 0, lines = 0;
    await file.seek(pos, Deno.SeekMode.Start);
    for (;;) {
      const buf = new Uint8Array(CHUNK);
      const n = await file.read(buf);
      if (n === null) break;
      const here = pos;
      pos += n;
      let from = 0;
      if (!begun) {
        const nl = buf.subarray(0, n).indexOf(10);
        if (nl < 0) continue;
        from = nl + 1;
        begun = true;
        if (here + from >= end) break; // no line starts in the range
      }
      // the line holding byte end − 1 ends at the first newline at or after it
      const look = Math.max(from, end - 1 - here);
      const q = look < n ? buf.subarray(0, n).indexOf(10, look) : -1;
      const to = q >= 0 ? q + 1 : n;
      if (to > from) {
        const out = buf.subarray(from, to);
        for (let i = out.indexOf(10); i >= 0; i = out.indexOf(10, i + 1)) lines++;
        if (options.lines) options.lines.count = lines;
        sent += out.length;
        options.onBytes?.(sent);
        yield out;
      }
      if (q >= 0) break;
    }
  } finally {
    file.close();
  }
}

/**
 * The comments of a piece: a whole file through {@linkcode readComments}, a byte range as JSON
 * lines numbered from its first line (1); errors name the file.
 */
export async function* readPiece(
  piece: Piece,
  fields: FieldMap,
  options: PieceReadOptions = {},
): AsyncGenerator<Comment> {
  if (piece.whole) {
    yield* readComments(piece.path, fields, options);
    return;
  }
  const stream = ReadableStream.from(rangeBytes(piece.path, piece.start, piece.end, options));
  try {
    yield* commentsFromJsonLines(stream, piece.path, fields, options);
  } catch (e) {
    throw streamError(e, piece.path);
  }
}

const enc = new TextEncoder(), dec = new TextDecoder();

/** What each rank did. */
export interface RankReport {
  /** The rank. */
  rank: number;
  /** Pieces read. */
  pieces: number;
  /** Bytes of those pieces (compressed bytes for compressed files). */
  bytes: number;
  /** Comments counted. */
  comments: number;
  /** Seconds spent reading and counting. */
  seconds: number;
}

/** The merged result on rank 0. */
export interface DistributedResult {
  /** Every rank's statistics merged in input order (rank 0's object). */
  stats: ToxicityStats;
  /** Rows skipped by the readers and by the statistics, by reason, in order of first occurrence. */
  skipped: SkipCounts;
  /** Each rank's share. */
  ranks: RankReport[];
}

/** Options of {@linkcode distributedStats}. */
export interface DistributedOptions {
  /** Skip bad rows (counted) instead of failing on the first. */
  skipBadRows?: boolean;
  /** Called for each piece before it is read; returns the callback of its bytes read. */
  onPiece?: (piece: Piece) => { onBytes: (bytes: number) => void; done: () => void };
}

interface Status {
  error: (WireError & { piece: number }) | null;
  lines: [number, number][];
}

/**
 * Reads this rank's pieces of `plan` (from {@linkcode planPieces} for `comm.size` ranks) into
 * `stats` (new, empty, with the same options on every rank) and merges every rank's statistics
 * on rank 0, in input order. Returns the merged result on rank 0 and null on the others. When a
 * rank fails, every rank learns it: the communicator is closed, rank 0 throws the error that a
 * single process would have met first (a line number counted from the start of the file), and
 * the other ranks throw {@linkcode RankFailed}.
 */
export async function distributedStats(
  comm: Communicator,
  stats: ToxicityStats,
  plan: readonly (readonly Piece[])[],
  fields: FieldMap,
  options: DistributedOptions = {},
): Promise<DistributedResult | null> {
  if (plan.length !== comm.size) {
    throw new RangeError(`A plan for ${plan.length} ranks cannot run on ${comm.size}`);
  }
  const mine = plan[comm.rank]!;
  const skipped: SkipCounts = {};
  const lines: [number, number][] = [];
  let failure: unknown, failedPiece = -1;
  const t0 = performance.now();
  for (const piece of mine) {
    const count = { count: 0 };
    const bar = options.onPiece?.(piece);
    try {
      for await (
        const c of readPiece(piece, fields, {
          skipBadRows: options.skipBadRows ?? false,
          skipped,
          lines: count,
          ...(bar ? { onBytes: bar.onBytes } : {}),
        })
      ) stats.add(c, piece.path);
    } catch (e) {
      failure = e;
      failedPiece = piece.index;
      break;
    } finally {
      bar?.done();
      lines.push([piece.index, count.count]);
    }
  }
  const report: RankReport = {
    rank: comm.rank,
    pieces: mine.length,
    bytes: mine.reduce((s, p) => s + p.end - p.start, 0),
    comments: stats.counted,
    seconds: (performance.now() - t0) / 1000,
  };

  // every rank learns every failure, and the line counts that place it in its file
  const status: Status = {
    error: failedPiece >= 0 ? { ...wireError(failure), piece: failedPiece } : null,
    lines,
  };
  const statuses = comm.size === 1
    ? [status]
    : comm.allGatherVSync(enc.encode(JSON.stringify(status))).map((b) =>
      JSON.parse(dec.decode(b)) as Status
    );
  const failures = statuses.flatMap((s, rank) => s.error ? [{ ...s.error, rank }] : []);
  if (failures.length) {
    const first = failures.reduce((a, b) => (b.piece < a.piece ? b : a));
    if (comm.size > 1) comm.close();
    if (comm.rank !== 0) throw new RankFailed(`rank ${first.rank} failed: ${first.message}`);
    const all = plan.flat();
    const piece = all.find((p) => p.index === first.piece)!;
    const counts = new Map(statuses.flatMap((s) => s.lines));
    const before = all.filter((p) => p.file === piece.file && p.index < piece.index)
      .reduce((s, p) => s + (counts.get(p.index) ?? 0), 0);
    const message = placeLine(first.message, piece.path, before);
    if (first.rank === 0 && message === first.message) throw failure;
    throw reviveError({ name: first.name, message });
  }

  // the partial statistics to rank 0, merged there in rank order (= input order)
  const meta = { skipped: Object.entries(skipped), report };
  if (comm.size === 1) return { stats, skipped: withStats(skipped, stats), ranks: [report] };
  const sendTo0 = Array.from(
    { length: comm.size },
    (_, j) =>
      j === 0 && comm.rank !== 0 ? encodePartial(stats.toPartial(), meta) : new Uint8Array(0),
  );
  const got = comm.allToAllVSync(sendTo0);
  if (comm.rank !== 0) return null;
  const ranks = [report];
  for (let r = 1; r < comm.size; r++) {
    const { partial, meta: m } = decodePartial(got[r]!, `rank ${r}`);
    const { skipped: s, report: rep } = m as { skipped: [string, number][]; report: RankReport };
    for (const [reason, n] of s) skipped[reason] = (skipped[reason] ?? 0) + n;
    stats.mergePartial(partial);
    ranks.push(rep);
  }
  return { stats, skipped: withStats(skipped, stats), ranks };
}

/** The readers' skip counts followed by those of the statistics (as one process adds them). */
function withStats(skipped: SkipCounts, stats: ToxicityStats): SkipCounts {
  const out = { ...skipped };
  for (const [k, v] of Object.entries(stats.skipped)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** `'path' line k: …` (k counted from a piece's first line) with the lines before it added. */
function placeLine(message: string, path: string, before: number): string {
  const head = `'${path}' line `;
  if (before === 0 || !message.startsWith(head)) return message;
  const m = /^(\d+): /.exec(message.slice(head.length));
  if (!m) return message;
  return `${head}${Number(m[1]) + before}${message.slice(head.length + m[1]!.length)}`;
}
