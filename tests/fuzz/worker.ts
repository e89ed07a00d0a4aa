// One fuzz worker (started by tests/fuzz/fuzz.ts, one per target and restarted after a hang or a
// crash): for cases [from, to) of one target it writes the mutant case folder, runs the reader, and
// prints one JSON line per case. Usage:
//   deno run --allow-read=WORK --allow-write=WORK tests/fuzz/worker.ts WORK TARGET SEED FROM TO
import { FormatError, NumericalError, ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { mutate, type SeedKind } from "./mutate.ts";
import { TARGETS } from "./targets.ts";

/** What one case did. */
export interface CaseResult {
  /** Case index. */
  i: number;
  /**
   * accepted: no error; clean: an lmkit error type whose message names the case's file or
   * folder; unnamed: an lmkit error type that does not; untyped: any other error.
   */
  r: "accepted" | "clean" | "unnamed" | "untyped";
  /** The error's name and message (cut to 300 characters). */
  err?: string;
  /** The independent validity check, for targets that have one. */
  valid?: boolean;
  /** The mutated file. */
  file: string;
}

/** The seed folders of a target as the parent wrote them: WORK/seeds/T/K/…, with manifest.json. */
export interface SeedManifest {
  /** Per seed: its file names and the mutable ones with their kind. */
  seeds: { files: string[]; mutable: Record<string, SeedKind> }[];
}

/** The generator of case `i` of target `t` under run seed `seed`. */
export function caseRng(seed: number, t: number, i: number): Rng {
  return new Rng(((seed * 1_000_003) ^ (t * 7_919 + 1) * 65_537 ^ i) >>> 0);
}

/** Writes case `i`'s folder into `dir` (emptied first); returns the mutated file's name. */
export async function writeCase(
  work: string,
  t: number,
  seed: number,
  i: number,
  dir: string,
): Promise<string> {
  const root = `${work}/seeds/${t}`;
  const manifest: SeedManifest = JSON.parse(await Deno.readTextFile(`${root}/manifest.json`));
  const rng = caseRng(seed, t, i);
  const k = rng.int(manifest.seeds.length);
  const s = manifest.seeds[k]!;
  const names = Object.keys(s.mutable);
  const target = names[rng.int(names.length)]!;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  for (const f of s.files) {
    const bytes = await Deno.readFile(`${root}/${k}/${f}`);
    const out = f === target ? await mutate(bytes, s.mutable[f]!, rng) : bytes;
    await Deno.mkdir(`${dir}/${f}`.replace(/\/[^/]*$/, ""), { recursive: true });
    await Deno.writeFile(`${dir}/${f}`, out);
  }
  return target;
}

/** Runs case `i` of target `t` in `dir` (already written) and classifies the outcome. */
export async function runCase(
  t: number,
  i: number,
  dir: string,
  file: string,
): Promise<CaseResult> {
  const target = TARGETS[t]!;
  const valid = target.valid ? await target.valid(dir) : undefined;
  const res: CaseResult = { i, r: "accepted", file };
  if (valid !== undefined) res.valid = valid;
  try {
    await target.run(dir);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    const typed = err instanceof FormatError || err instanceof ShapeError ||
      err instanceof NumericalError;
    res.r = typed ? (err.message.includes(dir) ? "clean" : "unnamed") : "untyped";
    res.err = `${err.name}: ${err.message}`.slice(0, 300);
  }
  return res;
}

if (import.meta.main) {
  const [work, tArg, seedArg, fromArg, toArg] = Deno.args;
  const t = Number(tArg), seed = Number(seedArg), from = Number(fromArg), to = Number(toArg);
  if (!work || !TARGETS[t] || !Number.isInteger(seed) || !(from <= to)) {
    console.error("usage: worker.ts WORK TARGET_INDEX SEED FROM TO");
    Deno.exit(2);
  }
  const dir = `${work}/case-${t}-${Deno.pid}`;
  const w = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s + "\n"));
  w(JSON.stringify({ ready: true }));
  for (let i = from; i < to; i++) {
    let file: string;
    try {
      file = await writeCase(work, t, seed, i, dir);
    } catch (e) {
      // a bug of the harness, not a finding: the parent stops on exit code 3
      console.error(`fuzz harness error in case ${i}: ${(e as Error).stack}`);
      Deno.exit(3);
    }
    w(JSON.stringify(await runCase(t, i, dir, file)));
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
