/**
 * Truth-probe items and their premise variants, rendered as contrast pairs.
 *
 * The authors (sfschouten/tvj-in-llms) build premise variants only for SNLI and EntailmentBank;
 * their Geometry-of-Truth loaders have no premises. Here a statement CSV gets a supporting
 * premise from its own columns — a `premise` column when present; `city` + `correct_country`
 * (cities, neg_cities): "The city of {city} is in {correct_country}."; `n1` + `n2`
 * (larger_than, smaller_than): "{n1} is larger/smaller than {n2}." in digits — and the seven
 * variants of the authors' configs: the original premise asserted or negated, another item's
 * premise (shuffled) asserted or negated, the premise with every ASCII letter replaced by a random
 * letter of the same case asserted or negated, and no premise.
 *
 * Template (EntailmentBank's `question_full` premise line, SNLI's hypothesis line, answer choices
 * "incorrect ||| correct", the period part of the answer):
 *
 *     The statement "{premise}" is {correct|incorrect}.\n     (absent for no_prem)
 *     Saying that "{statement}" is {incorrect|correct}.
 *
 * @module
 */
import { FormatError, ShapeError } from "../core/errors.ts";
import { Rng } from "../core/rng.ts";
import { readCsv } from "../io/text.ts";
import type { ContrastPrompt } from "./collect.ts";

/** The seven variants, in the authors' naming. */
export const PREMISE_VARIANTS = [
  "no_prem",
  "original_pos_prem",
  "original_neg_prem",
  "shuffle_pos_prem",
  "shuffle_neg_prem",
  "random_pos_prem",
  "random_neg_prem",
] as const;

/** One of {@linkcode PREMISE_VARIANTS}. */
export type PremiseVariant = typeof PREMISE_VARIANTS[number];

/** A statement with its truth label and supporting premise. */
export interface TruthItem {
  /** The statement judged. */
  statement: string;
  /** 1 true, 0 false. */
  label: 0 | 1;
  /** A sentence that settles the statement's truth. */
  premise: string;
}

/** The template version, part of every cache key. */
export const TEMPLATE_ID =
  'v1: The statement "{premise}" is {correct|incorrect}.\\nSaying that "{statement}" is {incorrect|correct}.';

/** The answer strings (negative side first). */
export const ANSWERS = ["incorrect", "correct"] as const;

/**
 * The supporting premise of a CSV row, or null when its columns give none.
 *
 * @example
 * ```ts
 * import { premiseOf } from "./data.ts";
 * if (premiseOf({ city: "Lyon", correct_country: "France" }) !== "The city of Lyon is in France.") throw new Error();
 * if (premiseOf({ n1: "51", n2: "52" }) !== "51 is smaller than 52.") throw new Error();
 * ```
 */
export function premiseOf(row: Record<string, string>): string | null {
  if (row.premise?.trim()) return row.premise.trim();
  if (row.city && row.correct_country) {
    return `The city of ${row.city} is in ${row.correct_country}.`;
  }
  if (row.n1 !== undefined && row.n2 !== undefined) {
    const a = Number(row.n1), b = Number(row.n2);
    if (Number.isFinite(a) && Number.isFinite(b) && a !== b) {
      return `${a} is ${a > b ? "larger" : "smaller"} than ${b}.`;
    }
  }
  return null;
}

/**
 * Reads `items` statements of a CSV with `statement` and `label` (0/1) columns and columns that
 * give a premise (see the module doc), in a seeded random order (the authors' `num_examples`
 * drawn with seed 0): the first half is the train split, the second the eval split.
 */
export async function loadTruthItems(
  path: string,
  options: { items?: number; seed?: number } = {},
): Promise<TruthItem[]> {
  const want = options.items ?? 1000;
  if (!Number.isInteger(want) || want < 4) {
    throw new RangeError(`items ${want} is not an integer ≥ 4`);
  }
  const all: TruthItem[] = [];
  for await (const { record: r, line } of readCsv(path, { required: ["statement", "label"] })) {
    if (r.label !== "0" && r.label !== "1") {
      throw new FormatError(`'${path}' line ${line}: label '${r.label}' is not 0 or 1`);
    }
    const premise = premiseOf(r);
    if (premise === null) {
      throw new FormatError(
        `'${path}' line ${line}: no premise (expected a 'premise' column, 'city' and 'correct_country', or 'n1' and 'n2')`,
      );
    }
    const statement = (r.statement ?? "").trim();
    if (!statement) throw new FormatError(`'${path}' line ${line}: empty statement`);
    all.push({ statement, label: r.label === "1" ? 1 : 0, premise });
  }
  if (all.length < want) {
    throw new ShapeError(
      `'${path}' has ${all.length} statements, fewer than the ${want} asked for`,
    );
  }
  const rng = new Rng(options.seed ?? 0);
  for (let i = all.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  const items = all.slice(0, want);
  const labels = new Set(items.map((x) => x.label));
  if (labels.size < 2) {
    throw new ShapeError(`'${path}': the ${want} items drawn have only label ${[...labels]}`);
  }
  return items;
}

/** Every ASCII letter replaced by a random letter of the same case. */
export function randomLetters(text: string, rng: Rng): string {
  return text.replace(/[A-Za-z]/g, (c) => {
    const base = c <= "Z" ? 65 : 97;
    return String.fromCharCode(base + rng.int(26));
  });
}

/**
 * The contrast prompts of one variant: side 0 answers "incorrect", side 1 "correct"; the edit
 * spans are each occurrence of an answer string in the premise line with the period after it.
 *
 * @example
 * ```ts
 * import { renderVariant } from "./data.ts";
 * const [p] = renderVariant([{ statement: "A is B.", label: 1, premise: "A is B." }], "original_neg_prem");
 * if (p!.pos !== 'The statement "A is B." is incorrect.\nSaying that "A is B." is correct.') throw new Error(p!.pos);
 * if (p!.editSpans![0]!.join() !== "27,37") throw new Error("the span of 'incorrect.'");
 * ```
 */
export function renderVariant(
  items: readonly TruthItem[],
  variant: PremiseVariant,
  seed = 0,
): ContrastPrompt[] {
  if (!PREMISE_VARIANTS.includes(variant)) {
    throw new RangeError(
      `Unknown premise variant '${variant}', expected one of ${PREMISE_VARIANTS.join(", ")}`,
    );
  }
  const rng = new Rng(seed + 1);
  const n = items.length;
  // a seeded derangement: every item gets another item's premise
  const other = Array.from({ length: n }, (_, i) => i);
  if (variant.startsWith("shuffle")) {
    if (n < 2) throw new ShapeError("Cannot shuffle premises among fewer than 2 items");
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i);
      [other[i], other[j]] = [other[j]!, other[i]!];
    }
  }
  return items.map((it, i) => {
    let premise = it.premise;
    if (variant.startsWith("shuffle")) premise = items[other[i]!]!.premise;
    if (variant.startsWith("random")) premise = randomLetters(premise, rng);
    const asserted = variant.endsWith("_pos_prem") ? "correct" : "incorrect";
    const head = variant === "no_prem" ? "" : `The statement "${premise}" is ${asserted}.\n`;
    const q = `${head}Saying that "${it.statement}" is `;
    const spans: [number, number][] = [];
    for (const re of [/incorrect\./g, /(?<!in)correct\./g]) {
      for (const m of head.matchAll(re)) spans.push([m.index!, m.index! + m[0].length]);
    }
    spans.sort((a, b) => a[0] - b[0]);
    return { neg: `${q}${ANSWERS[0]}.`, pos: `${q}${ANSWERS[1]}.`, editSpans: spans };
  });
}
