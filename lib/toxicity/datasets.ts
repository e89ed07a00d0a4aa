/**
 * Readers for the toxicity data sets: SemEval-2021 toxic spans (`spans,text` CSV), the ACL-2022
 * raw toxic-spans release (comments, annotations and typed spans, aggregated by majority), and
 * post-level GermEval-2018 and OffensEval-2020 TSVs. Every bad row is a FormatError naming the file
 * and line.
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import { readCsv, readLines } from "../io/text.ts";
import type { SpanPost } from "./spans.ts";

function cpLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Parses a SemEval span list such as "[3, 4, 5]"; `where` names the row in errors. */
export function parseSpanList(text: string, length: number, where: string): number[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new FormatError(
      `${where}: malformed span list '${
        text.length > 40 ? text.slice(0, 40) + "…" : text
      }' (expected a JSON list of character offsets)`,
    );
  }
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x))) {
    throw new FormatError(`${where}: span list must be a list of integer offsets`);
  }
  const bad = (v as number[]).find((x) => x < 0 || x >= length);
  if (bad !== undefined) {
    throw new FormatError(`${where}: span offset ${bad} is outside the text (length ${length})`);
  }
  return [...new Set(v as number[])].sort((a, b) => a - b);
}

/** A SemEval-2021 Task 5 file: every row a post, toxic when its span list is not empty. */
export async function readSemEval(path: string): Promise<SpanPost[]> {
  const out: SpanPost[] = [];
  for await (const { line, record } of readCsv(path, { required: ["spans", "text"] })) {
    const text = record.text!;
    const gold = parseSpanList(record.spans!, cpLength(text), `'${path}' line ${line}`);
    out.push({ id: `${path.split("/").pop()}:${line}`, text, gold, toxic: gold.length > 0 });
  }
  return out;
}

/** The span types of the ACL-2022 release (truncated labels in the raw file are mapped back). */
export const ACL_TYPES = [
  "Insult",
  "Profane/Obscene",
  "Identity based Attack",
  "Threat",
  "Other Toxicity",
] as const;

function normaliseType(t: string): string | null {
  const s = t.trim();
  if (s === "") return null;
  return ACL_TYPES.find((x) => x.startsWith(s)) ?? s;
}

/** One ACL-2022 comment with majority gold offsets overall and per span type. */
export interface AclComment {
  /** Identifier. */
  id: string;
  /** The text. */
  text: string;
  /** Offsets marked (with any type) by more than half of the comment's annotators. */
  gold: number[];
  /** The same per type. */
  byType: Record<string, number[]>;
  /** Annotators of the comment. */
  annotators: number;
}

/**
 * Reads `comments.csv`, `annotations.csv` and `spans.csv` of the ACL-2022 release from `dir`: a
 * character is gold when more than half of the comment's annotators marked it (for a type: with a
 * span of that type). A span outside its comment is an error, or with `skipBadSpans` is skipped
 * and counted (the release has 94 of 46,784 such spans).
 */
export async function readAclToxicSpans(
  dir: string,
  options: { skipBadSpans?: boolean } = {},
): Promise<{ comments: AclComment[]; skippedSpans: number }> {
  let skippedSpans = 0;
  const texts = new Map<string, { text: string; len: number }>();
  for await (
    const { record } of readCsv(`${dir}/comments.csv`, { required: ["comment_id", "comment_text"] })
  ) {
    texts.set(record.comment_id!, {
      text: record.comment_text!,
      len: cpLength(record.comment_text!),
    });
  }
  const annComment = new Map<string, string>();
  const annotators = new Map<string, number>();
  for await (
    const { line, record } of readCsv(`${dir}/annotations.csv`, {
      required: ["annotation", "comment_id"],
    })
  ) {
    if (!texts.has(record.comment_id!)) {
      throw new FormatError(
        `'${dir}/annotations.csv' line ${line}: comment ${record.comment_id} is not in comments.csv`,
      );
    }
    annComment.set(record.annotation!, record.comment_id!);
    annotators.set(record.comment_id!, (annotators.get(record.comment_id!) ?? 0) + 1);
  }
  // per comment and type: offset → set of annotations marking it
  const marks = new Map<string, Map<string, Map<number, Set<string>>>>();
  for await (
    const { line, record } of readCsv(`${dir}/spans.csv`, {
      required: ["annotation", "type", "start", "end"],
    })
  ) {
    const where = `'${dir}/spans.csv' line ${line}`;
    const c = annComment.get(record.annotation!);
    if (c === undefined) {
      throw new FormatError(`${where}: annotation ${record.annotation} is not in annotations.csv`);
    }
    const start = Number(record.start), end = Number(record.end), len = texts.get(c)!.len;
    if (
      !Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > len || end < start
    ) {
      if (options.skipBadSpans) {
        skippedSpans++;
        continue;
      }
      throw new FormatError(
        `${where}: span [${record.start}, ${record.end}) is not inside comment ${c} (length ${len})`,
      );
    }
    const type = normaliseType(record.type!) ?? "untyped";
    let byType = marks.get(c);
    if (!byType) marks.set(c, byType = new Map());
    for (const t of [type, "*"]) {
      let m = byType.get(t);
      if (!m) byType.set(t, m = new Map());
      for (let x = start; x < end; x++) {
        let s = m.get(x);
        if (!s) m.set(x, s = new Set());
        s.add(record.annotation!);
      }
    }
  }
  const out: AclComment[] = [];
  for (const [id, { text }] of texts) {
    const k = annotators.get(id) ?? 0;
    const majority = (m: Map<number, Set<string>> | undefined) =>
      [...(m ?? new Map<number, Set<string>>())].filter(([, s]) => s.size > k / 2).map(([x]) => x)
        .sort((a, b) => a - b);
    const byType: Record<string, number[]> = {};
    for (const t of ACL_TYPES) byType[t] = majority(marks.get(id)?.get(t));
    out.push({ id, text, gold: majority(marks.get(id)?.get("*")), byType, annotators: k });
  }
  return { comments: out, skippedSpans };
}

/** A post with a binary label. */
export interface LabelledPost {
  /** Identifier. */
  id: string;
  /** The text. */
  text: string;
  /** Post-level label. */
  toxic: boolean;
}

/** GermEval-2018 (`text<TAB>OFFENSE|OTHER<TAB>fine`). */
export async function readGermEval(path: string): Promise<LabelledPost[]> {
  const out: LabelledPost[] = [];
  let line = 0;
  for await (const t of readLines(path)) {
    line++;
    if (t.trim() === "") continue;
    const cols = t.split("\t");
    if (cols.length !== 3 || (cols[1] !== "OFFENSE" && cols[1] !== "OTHER")) {
      throw new FormatError(
        `'${path}' line ${line}: expected 'text<TAB>OFFENSE|OTHER<TAB>fine label'`,
      );
    }
    out.push({
      id: `${path.split("/").pop()}:${line}`,
      text: cols[0]!,
      toxic: cols[1] === "OFFENSE",
    });
  }
  return out;
}

/** OffensEval-2020 participant copies (`id<TAB>tweet<TAB>0|1`, "<LF>" for newlines). */
export async function readOffensEval(path: string): Promise<LabelledPost[]> {
  const out: LabelledPost[] = [];
  let line = 0;
  for await (const t of readLines(path)) {
    line++;
    if (t.trim() === "") continue;
    const cols = t.split("\t");
    if (cols.length !== 3 || (cols[2] !== "0" && cols[2] !== "1")) {
      throw new FormatError(`'${path}' line ${line}: expected 'id<TAB>tweet<TAB>0|1'`);
    }
    out.push({ id: cols[0]!, text: cols[1]!.replaceAll("<LF>", "\n"), toxic: cols[2] === "1" });
  }
  return out;
}

/** A deterministic train/dev/test split by id (80/10/10 by a hash of the id). */
export function splitOfId(id: string): "train" | "dev" | "test" {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619) >>> 0;
  const u = (Math.imul(h, 2654435761) >>> 0) / 2 ** 32;
  return u < 0.8 ? "train" : u < 0.9 ? "dev" : "test";
}
