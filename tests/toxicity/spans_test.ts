// Span metrics exactly as SemEval-2021 and the cross-domain code define them, on hand-built
// cases (edge cases included) and against a direct set computation on fresh random spans.
import { assert, assertAlmostEquals, assertEquals, assertRejects } from "@std/assert";
import {
  evaluateSpans,
  fillGaps,
  offsetRuns,
  postScores,
  spanF1,
  type SpanPost,
} from "../../lib/toxicity/spans.ts";
import {
  parseSpanList,
  readAclToxicSpans,
  readGermEval,
  readSemEval,
} from "../../lib/toxicity/datasets.ts";
import { FormatError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed } from "../_util.ts";

Deno.test("SemEval F1: the task's test vector and the empty cases", () => {
  assertEquals(spanF1([0, 1, 4, 5], [0, 1, 6]), 0.5714285714285714);
  assertEquals(spanF1([], []), 1);
  assertEquals(spanF1([1], []), 0);
  assertEquals(spanF1([], [1]), 0);
  assertEquals(spanF1([1, 2], [3]), 0);
  assertEquals(spanF1([1, 1, 2], [2, 2]), 2 / 3); // sets: duplicates do not count
});

Deno.test("per-post precision and recall follow the authors' NaN rules", () => {
  const nan = (a: number[], b: number[]) => JSON.stringify(postScores(a, b));
  assertEquals(nan([], [1]), JSON.stringify({ f1: 0, precision: NaN, recall: 0 }));
  assertEquals(nan([1], []), JSON.stringify({ f1: 0, precision: 0, recall: NaN }));
  assertEquals(nan([], []), JSON.stringify({ f1: 1, precision: NaN, recall: NaN }));
  assertEquals(postScores([1], [2]), { f1: 0, precision: 0, recall: 0 });
  assertEquals(postScores([1, 2, 3, 4], [3, 4]), { f1: 2 / 3, precision: 0.5, recall: 1 });
});

Deno.test("F1 equals a direct set computation on fresh random spans; aggregates by group", () => {
  const seed = freshSeed();
  const rng = new Rng(seed);
  const posts: SpanPost[] = [], preds: number[][] = [];
  for (let i = 0; i < 300; i++) {
    const pick = () =>
      [...new Set(Array.from({ length: rng.int(6) }, () => rng.int(10)))].sort((a, b) => a - b);
    const gold = pick(), pred = pick();
    posts.push({
      id: String(i),
      text: "x".repeat(10),
      gold,
      toxic: gold.length > 0 || rng.int(3) === 0,
    });
    preds.push(pred);
    const inter = pred.filter((x) => gold.includes(x)).length;
    const want = gold.length === 0
      ? (pred.length === 0 ? 1 : 0)
      : pred.length === 0
      ? 0
      : (2 * inter) / (pred.length + gold.length);
    assertAlmostEquals(spanF1(pred, gold), want, 1e-15, `seed ${seed}`);
    assertAlmostEquals(postScores(pred, gold).f1, want, 1e-15, `seed ${seed}`);
  }
  const r = evaluateSpans(posts, preds);
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  assertAlmostEquals(r.all.f1, mean(posts.map((p, i) => spanF1(preds[i]!, p.gold))), 1e-12);
  const nonToxic = posts.map((p, i) => [p, preds[i]!] as const).filter(([p]) => !p.toxic);
  assertAlmostEquals(r.nonToxic.f1, mean(nonToxic.map(([p, q]) => spanF1(q, p.gold))), 1e-12);
  assertEquals(r.all.n, 300);
  assertEquals(r.emptyBoth + r.emptyGold + r.emptyPrediction <= 300, true);
  // precision skips posts with an empty prediction
  const withPred = posts.map((p, i) => postScores(preds[i]!, p.gold).precision).filter((x) =>
    !Number.isNaN(x)
  );
  assertAlmostEquals(r.all.precision, mean(withPred), 1e-12);
});

Deno.test("gap filling k ∈ {0, 1, ∞} and runs", () => {
  assertEquals(fillGaps([5, 0, 1, 3], 0), [0, 1, 3, 5]);
  assertEquals(fillGaps([0, 1, 3, 5, 9], 1), [0, 1, 2, 3, 4, 5, 9]);
  assertEquals(fillGaps([2, 6], Infinity), [2, 3, 4, 5, 6]);
  assertEquals(offsetRuns([1, 2, 3, 7, 8]), [[1, 4], [7, 9]]);
});

async function temp(name: string, text: string): Promise<string> {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/${name}`, text);
  return `${dir}/${name}`;
}

Deno.test("readers: malformed span lists, offsets outside the text and bad rows name file and line", async () => {
  assertEquals(parseSpanList("[3, 1, 1]", 5, "x"), [1, 3]);
  let p = await temp("s.csv", 'spans,text\n"[0, 1]",ab\n"[0, 1",ab\n');
  await assertRejects(
    () => readSemEval(p),
    FormatError,
    `'${p}' line 3: malformed span list '[0, 1'`,
  );
  p = await temp("s.csv", 'spans,text\n"[2]",ab\n');
  await assertRejects(
    () => readSemEval(p),
    FormatError,
    `'${p}' line 2: span offset 2 is outside the text (length 2)`,
  );
  p = await temp("s.csv", 'spans,text\n"[1]","😀b"\n');
  assertEquals((await readSemEval(p))[0]!.gold, [1]); // code points: the emoji is one character
  p = await temp("s.csv", "text\nab\n");
  await assertRejects(() => readSemEval(p), FormatError, "missing column 'spans'");
  p = await temp("g.txt", "gut\tOTHER\tOTHER\nblöd\tMAYBE\tX\n");
  await assertRejects(
    () => readGermEval(p),
    FormatError,
    `'${p}' line 2: expected 'text<TAB>OFFENSE|OTHER<TAB>fine label'`,
  );
});

Deno.test("ACL-2022 gold: characters marked by more than half of the annotators, per type", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/comments.csv`,
    "comment_id,comment_text\n1,you idiot fool\n2,fine\n",
  );
  await Deno.writeTextFile(
    `${dir}/annotations.csv`,
    "annotation,comment_id,worker,country,all toxic,not toxic\n10,1,a,X,False,False\n11,1,b,X,False,False\n12,1,c,X,False,False\n13,2,a,X,False,False\n",
  );
  // "idiot" [4,9) by 10 and 11 (Insult); "fool" [10,14) by 10 only; [4,6) also by 12 as Threat
  await Deno.writeTextFile(
    `${dir}/spans.csv`,
    "annotation,type,start,end\n10,Insult,4,9\n11,Insu,4,9\n10,Insult,10,14\n12,Threat,4,6\n12,Insult,20,30\n",
  );
  await assertRejects(
    () => readAclToxicSpans(dir),
    FormatError,
    "span [20, 30) is not inside comment 1 (length 14)",
  );
  const { comments, skippedSpans } = await readAclToxicSpans(dir, { skipBadSpans: true });
  assertEquals(skippedSpans, 1);
  const c = comments.find((x) => x.id === "1")!;
  assertEquals(c.gold, [4, 5, 6, 7, 8]);
  assertEquals(c.byType.Insult, [4, 5, 6, 7, 8]); // "Insu" is the truncated Insult label
  assertEquals(c.byType.Threat, []);
  assert(comments.find((x) => x.id === "2")!.gold.length === 0);
});
