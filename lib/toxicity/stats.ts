/**
 * Toxicity statistics over comment collections (Tufa et al., toxicity around real-world events
 * and across topics in six languages): per comment the language (given or detected), lexicon
 * toxicity (at least `minHits` word-boundary hits of the language's lexicon) and lexicon
 * sentiment; aggregated by language × day × community, with weekly series, event windows
 * (before/after ratios, two-proportion test, bootstrap interval over days, delayed peak),
 * topic × language tables with rank agreement between languages, and toxicity by reply depth.
 *
 * The papers do not state these choices; they are ours and are flags of the script: toxic =
 * ≥ 1 LDNOOBW hit, windows of ±7 days (before: the 7 days before the event day, after: the event
 * day and the 6 days after), weeks starting on Monday (UTC), peaks among days with ≥ 20 comments.
 *
 * Sums of sentiment are kept exactly (see `partial.ts`) and rounded once per table cell, and the
 * state can be exported ({@linkcode ToxicityStats.toPartial}) and merged
 * ({@linkcode ToxicityStats.mergePartial}): the statistics of consecutive parts of a collection,
 * merged in order, equal those of the whole read at once, to the last bit.
 *
 * @module
 */
import { franc } from "npm:franc-min@6.2.0";
import { FormatError } from "../core/errors.ts";
import { bootstrapInterval, kendall, spearman, twoProportionTest } from "../stats/tests.ts";
import type { Comment } from "./comments.ts";
import { ldnoobw, TOXICITY_LANGUAGES } from "./lexicon.ts";
import { LexiconMatcher } from "./matcher.ts";
import { SentimentScorer } from "./sentiment.ts";
import { exactAdd, exactMerge, exactValue } from "./partial.ts";

const ISO3: Record<string, string> = {
  eng: "en",
  deu: "de",
  nld: "nl",
  spa: "es",
  tur: "tr",
  arb: "ar",
};

/** Settings of {@linkcode ToxicityStats}. */
export interface ToxicityStatsOptions {
  /** Languages kept (default en, de, nl, es, tr, ar). */
  languages?: readonly string[];
  /** Lexicon per language (default: LDNOOBW from naughty-words). */
  lexicons?: Record<string, LexiconMatcher>;
  /** Hits that make a comment toxic (default 1). */
  minHits?: number;
  /** Detect the language of comments that have none (franc-min, restricted to `languages`). */
  detectLanguage?: boolean;
  /** Community → topic. */
  topics?: ReadonlyMap<string, string>;
  /** Keep ids and parents for toxicity by reply depth. */
  depth?: boolean;
  /** Skip comments in an unknown language instead of failing. */
  skipBadRows?: boolean;
}

/** Counts of a bucket of comments. */
export interface DayCell {
  /** Comments. */
  n: number;
  /** Toxic comments. */
  toxic: number;
  /** Sum of comparative sentiment. */
  sentiment: number;
}

/** A bucket whose sentiment sum is kept exactly (non-overlapping partials). */
interface ExactCell {
  n: number;
  toxic: number;
  s: number[];
}

/**
 * The state of a {@linkcode ToxicityStats} as plain data (see
 * {@linkcode ToxicityStats.toPartial}): what {@linkcode ToxicityStats.mergePartial} adds to
 * another. Every array is in the order the comments came.
 */
export interface StatsPartial {
  /** The languages, in order (language indices below refer to it). */
  languages: string[];
  /** Comments counted. */
  counted: number;
  /** Comments left out, by reason, in the order the reasons first occurred. */
  skipped: [string, number][];
  /** Communities in the order they first occurred (community indices below refer to it). */
  communities: string[];
  /**
   * The language × day × community cells in the order they first occurred, each as day,
   * community index, language index, comments, toxic comments, k, then the k non-overlapping
   * partials of the exact sentiment sum.
   */
  cells: Float64Array;
  /** Comment ids of the reply tree (the last comment with each id)… */
  ids: string[];
  /** …and the index of that comment among the records. */
  idIndex: Float64Array;
  /** Per record (comment with an id), its parent id or null. */
  parents: (string | null)[];
  /** Per record, 1 when toxic. */
  toxic: Uint8Array;
  /** Per record, its language index. */
  language: Uint8Array;
}

/** One day of an event's series. */
export interface EventPoint {
  /** Event name. */
  event: string;
  /** Language. */
  language: string;
  /** Days from the event day. */
  offset: number;
  /** Comments that day. */
  n: number;
  /** Toxic ratio that day (NaN without comments). */
  ratio: number;
}

/** Rank agreement of two languages over topics. */
export interface TopicAgreement {
  /** First language. */
  language_a: string;
  /** Second language. */
  language_b: string;
  /** Topics compared. */
  topics: number;
  /** Spearman's ρ and its p-value. */
  spearman: number;
  /** p-value of ρ. */
  spearman_p: number;
  /** Kendall's τ-b. */
  kendall: number;
  /** p-value of τ-b. */
  kendall_p: number;
}

/** One dated event. */
export interface EventDate {
  /** Event name. */
  event: string;
  /** UTC day number (days since 1970-01-01). */
  day: number;
  /** Only this language, or all when absent. */
  language?: string;
}

const DAY = 86400;
// offset that keeps day numbers of dates after 1696 positive in cell keys
const DAY0 = 100000;

/** ISO date of a UTC day number. */
export function isoDay(day: number): string {
  return new Date(day * DAY * 1000).toISOString().slice(0, 10);
}

/** Accumulates comments and derives the tables. */
export class ToxicityStats {
  /** Languages kept, in order. */
  readonly languages: readonly string[];
  // one automaton per language over the toxicity terms and the sentiment terms together, so that
  // each comment is scanned once; per term: is it toxic, and its valence (NaN: none)
  readonly #combined: { matcher: LexiconMatcher; toxic: Uint8Array; valence: Float64Array }[] = [];
  readonly #o: ToxicityStatsOptions;
  // cells keyed by ((day + DAY0) · 2^20 + community index) · 8 + language index
  readonly #cells = new Map<number, ExactCell>();
  readonly #communityIndex = new Map<string, number>();
  readonly #communities: string[] = [];
  /** Comments counted. */
  counted = 0;
  /** Comments left out, by reason. */
  readonly skipped: Record<string, number> = {};
  // reply tree
  readonly #ids = new Map<string, number>();
  readonly #parents: (string | undefined)[] = [];
  #tox = new Uint8Array(1024);
  #lang = new Uint8Array(1024);

  /** Loads lexicons and sentiment lists. */
  constructor(options: ToxicityStatsOptions = {}) {
    this.#o = options;
    this.languages = options.languages ?? TOXICITY_LANGUAGES;
    for (const l of this.languages) {
      const lex = options.lexicons?.[l] ??
        new LexiconMatcher(ldnoobw(l).entries.map((e) => e.term), { language: l });
      const valences = SentimentScorer.valences(l);
      const matcher = new LexiconMatcher([...lex.terms, ...valences.keys()], { language: l });
      const toxicKeys = new Set(lex.terms.map((t) => matcher.key(t)));
      const valenceByKey = new Map([...valences].map(([t, v]) => [matcher.key(t), v]));
      this.#combined.push({
        matcher,
        toxic: Uint8Array.from(matcher.terms, (t) => (toxicKeys.has(t) ? 1 : 0)),
        valence: Float64Array.from(matcher.terms, (t) => valenceByKey.get(t) ?? NaN),
      });
    }
  }

  #skip(reason: string): false {
    this.skipped[reason] = (this.skipped[reason] ?? 0) + 1;
    return false;
  }

  /** Adds one comment; returns false when it is left out (counted in `skipped`). */
  add(c: Comment, source: string): boolean {
    let lang = c.language;
    if (lang === undefined) {
      if (!this.#o.detectLanguage) {
        throw new FormatError(
          `'${source}' line ${c.line}: the comment has no language (map a language field or detect languages)`,
        );
      }
      lang = ISO3[
        franc(c.text, {
          only: this.languages.map((l) => Object.keys(ISO3).find((k) => ISO3[k] === l)!),
        })
      ];
      if (lang === undefined) {
        return this.#skip("language undetermined");
      }
    }
    const li = this.languages.indexOf(lang);
    if (li < 0) {
      if (this.#o.skipBadRows) return this.#skip(`unknown language`);
      throw new FormatError(
        `'${source}' line ${c.line}: unknown language code '${lang}' (expected ${
          this.languages.join(", ")
        })`,
      );
    }
    const { matcher, toxic: isToxic, valence } = this.#combined[li]!;
    let toxicHits = 0, sum = 0, cursor = 0;
    // hits come sorted by start, longest first: toxicity counts every toxic hit; sentiment takes
    // the leftmost-longest non-overlapping valence hits, as SentimentScorer does
    for (const h of matcher.hits(c.text, "word")) {
      toxicHits += isToxic[h.term]!;
      const v = valence[h.term]!;
      if (!Number.isNaN(v) && h.start >= cursor) {
        sum += v;
        cursor = h.end;
      }
    }
    const toxic = toxicHits >= (this.#o.minHits ?? 1);
    const words = matcher.lastWords;
    const sentiment = words === 0 ? 0 : sum / words;
    const day = Math.floor(c.time / DAY);
    const ci = this.#community(c.community);
    const key = ((day + DAY0) * 1048576 + ci) * 8 + li;
    let cell = this.#cells.get(key);
    if (!cell) this.#cells.set(key, cell = { n: 0, toxic: 0, s: [] });
    cell.n++;
    if (toxic) cell.toxic++;
    exactAdd(cell.s, sentiment);
    if (this.#o.depth && c.id !== undefined) {
      const i = this.#parents.length;
      this.#reserve(i + 1);
      this.#ids.set(c.id, i);
      this.#parents.push(c.parent);
      this.#tox[i] = toxic ? 1 : 0;
      this.#lang[i] = li;
    }
    this.counted++;
    return true;
  }

  /** Grows the per-record arrays to hold at least `n` records. */
  #reserve(n: number): void {
    if (n <= this.#tox.length) return;
    let cap = this.#tox.length;
    while (cap < n) cap *= 2;
    const grow = (a: Uint8Array) => {
      const b = new Uint8Array(cap);
      b.set(a);
      return b;
    };
    this.#tox = grow(this.#tox);
    this.#lang = grow(this.#lang);
  }

  /** The community index of `name`, added when new. */
  #community(name: string): number {
    let ci = this.#communityIndex.get(name);
    if (ci === undefined) {
      ci = this.#communities.length;
      if (ci >= 1 << 20) throw new RangeError("More than 2^20 communities");
      this.#communityIndex.set(name, ci);
      this.#communities.push(name);
    }
    return ci;
  }

  /**
   * The state as plain data, to be merged into the statistics of the comments before these
   * with {@linkcode ToxicityStats.mergePartial} (e.g. on another rank); sums stay exact.
   */
  toPartial(): StatsPartial {
    const cells: number[] = [];
    for (const [k, c] of this.#cells) {
      const li = k % 8, rest = (k - li) / 8, ci = rest % 1048576;
      cells.push((rest - ci) / 1048576 - DAY0, ci, li, c.n, c.toxic, c.s.length, ...c.s);
    }
    const n = this.#parents.length;
    return {
      languages: [...this.languages],
      counted: this.counted,
      skipped: Object.entries(this.skipped),
      communities: [...this.#communities],
      cells: Float64Array.from(cells),
      ids: [...this.#ids.keys()],
      idIndex: Float64Array.from(this.#ids.values()),
      parents: this.#parents.map((p) => p ?? null),
      toxic: this.#tox.slice(0, n),
      language: this.#lang.slice(0, n),
    };
  }

  /**
   * Adds the statistics of comments that came after every comment added so far (a later part
   * of the collection, counted by a ToxicityStats of the same options): afterwards every table
   * is exactly what one ToxicityStats would give for all the comments in that order.
   */
  mergePartial(p: StatsPartial): void {
    if (p.languages.join(",") !== this.languages.join(",")) {
      throw new RangeError(
        `Cannot merge statistics of languages ${p.languages.join(",")} into ${
          this.languages.join(",")
        }`,
      );
    }
    const cis = p.communities.map((name) => this.#community(name));
    const cs = p.cells;
    for (let o = 0; o < cs.length;) {
      const day = cs[o]!, ci = cis[cs[o + 1]!]!, li = cs[o + 2]!, k = cs[o + 5]!;
      const key = ((day + DAY0) * 1048576 + ci) * 8 + li;
      let cell = this.#cells.get(key);
      if (!cell) this.#cells.set(key, cell = { n: 0, toxic: 0, s: [] });
      cell.n += cs[o + 3]!;
      cell.toxic += cs[o + 4]!;
      exactMerge(cell.s, cs.subarray(o + 6, o + 6 + k));
      o += 6 + k;
    }
    const base = this.#parents.length, n = p.parents.length;
    this.#reserve(base + n);
    this.#tox.set(p.toxic, base);
    this.#lang.set(p.language, base);
    for (const parent of p.parents) this.#parents.push(parent ?? undefined);
    for (let i = 0; i < p.ids.length; i++) this.#ids.set(p.ids[i]!, base + p.idIndex[i]!);
    this.counted += p.counted;
    for (const [reason, count] of p.skipped) {
      this.skipped[reason] = (this.skipped[reason] ?? 0) + count;
    }
  }

  /** Rows per language × day × community (and topic). */
  daily(): {
    language: string;
    day: number;
    community: string;
    topic: string;
    n: number;
    toxic: number;
    ratio: number;
    sentiment: number;
  }[] {
    const rows = [];
    for (const { language, day, community, cell: c } of this.#entries()) {
      rows.push({
        language,
        day,
        community,
        topic: this.#o.topics?.get(community) ?? "",
        n: c.n,
        toxic: c.toxic,
        ratio: c.toxic / c.n,
        sentiment: exactValue(c.s) / c.n,
      });
    }
    return rows.sort((a, b) =>
      a.language.localeCompare(b.language) || a.day - b.day ||
      a.community.localeCompare(b.community)
    );
  }

  /** Every language × day × community cell with its decoded key, unsorted. */
  *#entries(): Generator<{ language: string; day: number; community: string; cell: ExactCell }> {
    for (const [k, cell] of this.#cells) {
      const li = k % 8, rest = (k - li) / 8, ci = rest % 1048576;
      yield {
        language: this.languages[li]!,
        day: (rest - ci) / 1048576 - DAY0,
        community: this.#communities[ci]!,
        cell,
      };
    }
  }

  /** Totals per language and day (all communities). */
  perDay(): Map<string, Map<number, DayCell>> {
    const sums = new Map<string, Map<number, ExactCell>>();
    for (const l of this.languages) sums.set(l, new Map());
    for (const { language, day: d, cell: c } of this.#entries()) {
      const m = sums.get(language)!;
      let cell = m.get(d);
      if (!cell) m.set(d, cell = { n: 0, toxic: 0, s: [] });
      cell.n += c.n;
      cell.toxic += c.toxic;
      exactMerge(cell.s, c.s);
    }
    const out = new Map<string, Map<number, DayCell>>();
    for (const [l, m] of sums) {
      out.set(
        l,
        new Map(
          [...m].map(([d, c]) => [d, { n: c.n, toxic: c.toxic, sentiment: exactValue(c.s) }]),
        ),
      );
    }
    return out;
  }

  /** Rows per language × week (Monday-based, UTC) × community. */
  weekly(): {
    language: string;
    week: number;
    community: string;
    n: number;
    toxic: number;
    ratio: number;
    sentiment: number;
  }[] {
    const m = new Map<string, ExactCell & { language: string; week: number; community: string }>();
    for (const { language, day, community, cell } of this.#entries()) {
      const week = day - ((day + 3) % 7);
      const k = `${language}\u0000${week}\u0000${community}`;
      let c = m.get(k);
      if (!c) m.set(k, c = { language, week, community, n: 0, toxic: 0, s: [] });
      c.n += cell.n;
      c.toxic += cell.toxic;
      exactMerge(c.s, cell.s);
    }
    return [...m.values()].map((c) => ({
      language: c.language,
      week: c.week,
      community: c.community,
      n: c.n,
      toxic: c.toxic,
      // (columns in the order weekly.csv has always had)
      sentiment: exactValue(c.s) / c.n,
      ratio: c.toxic / c.n,
    }))
      .sort((a, b) =>
        a.language.localeCompare(b.language) || a.week - b.week ||
        a.community.localeCompare(b.community)
      );
  }

  /**
   * Each event × language: the `window` days before the event day against the event day and the
   * `window − 1` days after: counts, ratios, two-proportion test, a percentile bootstrap interval of
   * the ratio difference resampling days within each window, the peak day after the event (among
   * days with ≥ `minDayComments`) and its lag; plus the daily series around the event.
   */
  events(
    events: readonly EventDate[],
    options: { window?: number; replicates?: number; seed?: number; minDayComments?: number } = {},
  ): { rows: Record<string, string | number>[]; series: EventPoint[] } {
    const k = options.window ?? 7, minDay = options.minDayComments ?? 20;
    const perDay = this.perDay();
    const rows: Record<string, string | number>[] = [];
    const series: EventPoint[] = [];
    for (const e of events) {
      for (const lang of e.language ? [e.language] : this.languages) {
        const days = perDay.get(lang);
        if (!days) throw new RangeError(`Event '${e.event}': unknown language '${lang}'`);
        const cells = (from: number, to: number) => {
          const out: DayCell[] = [];
          for (let d = from; d <= to; d++) {
            out.push(days.get(d) ?? { n: 0, toxic: 0, sentiment: 0 });
          }
          return out;
        };
        const before = cells(e.day - k, e.day - 1), after = cells(e.day, e.day + k - 1);
        const sum = (cs: DayCell[]) =>
          cs.reduce((s, c) => ({ n: s.n + c.n, toxic: s.toxic + c.toxic }), { n: 0, toxic: 0 });
        const b = sum(before), a = sum(after);
        const row: Record<string, string | number> = {
          event: e.event,
          date: isoDay(e.day),
          language: lang,
          before_n: b.n,
          before_toxic: b.toxic,
          before_ratio: b.n ? b.toxic / b.n : NaN,
          after_n: a.n,
          after_toxic: a.toxic,
          after_ratio: a.n ? a.toxic / a.n : NaN,
        };
        if (b.n > 0 && a.n > 0) {
          const t = twoProportionTest(b.toxic, b.n, a.toxic, a.n);
          const ratio = (cs: DayCell[], rng: { int(n: number): number }) => {
            let n = 0, x = 0;
            for (let i = 0; i < cs.length; i++) {
              const c = cs[rng.int(cs.length)]!;
              n += c.n;
              x += c.toxic;
            }
            return n === 0 ? NaN : x / n;
          };
          const [lo, hi] = bootstrapInterval((rng) => ratio(after, rng) - ratio(before, rng), {
            replicates: options.replicates ?? 1000,
            seed: options.seed ?? 0,
          });
          Object.assign(row, { difference: t.difference, z: t.z, p: t.p, ci_low: lo, ci_high: hi });
        } else Object.assign(row, { difference: NaN, z: NaN, p: NaN, ci_low: NaN, ci_high: NaN });
        let peak = -1, peakRatio = -1;
        after.forEach((c, i) => {
          if (c.n >= minDay && c.toxic / c.n > peakRatio) {
            peakRatio = c.toxic / c.n;
            peak = i;
          }
        });
        Object.assign(row, {
          peak_date: peak >= 0 ? isoDay(e.day + peak) : "",
          peak_lag_days: peak >= 0 ? peak : NaN,
          peak_ratio: peak >= 0 ? peakRatio : NaN,
        });
        rows.push(row);
        [...before, ...after].forEach((c, i) =>
          series.push({
            event: e.event,
            language: lang,
            offset: i - k,
            n: c.n,
            ratio: c.n ? c.toxic / c.n : NaN,
          })
        );
      }
    }
    return { rows, series };
  }

  /** Topic × language: comments, toxic ratio, mean sentiment (communities without a topic left out). */
  topicTable(): {
    topic: string;
    language: string;
    n: number;
    toxic: number;
    ratio: number;
    sentiment: number;
  }[] {
    const m = new Map<string, ExactCell>();
    for (const { language, community, cell } of this.#entries()) {
      const topic = this.#o.topics?.get(community);
      if (topic === undefined || topic === "") continue;
      const k = `${topic}\u0000${language}`;
      let c = m.get(k);
      if (!c) m.set(k, c = { n: 0, toxic: 0, s: [] });
      c.n += cell.n;
      c.toxic += cell.toxic;
      exactMerge(c.s, cell.s);
    }
    return [...m].map(([k, c]) => {
      const [topic, language] = k.split("\u0000") as [string, string];
      return {
        topic,
        language,
        n: c.n,
        toxic: c.toxic,
        ratio: c.toxic / c.n,
        sentiment: exactValue(c.s) / c.n,
      };
    }).sort((a, b) => a.topic.localeCompare(b.topic) || a.language.localeCompare(b.language));
  }

  /**
   * Whether languages rank topics alike: for each pair of languages, Spearman's ρ and Kendall's
   * τ-b of the toxic ratios over topics with ≥ `minComments` in both.
   */
  topicAgreement(minComments = 50): TopicAgreement[] {
    const table = this.topicTable();
    const out: TopicAgreement[] = [];
    for (let i = 0; i < this.languages.length; i++) {
      for (let j = i + 1; j < this.languages.length; j++) {
        const a = this.languages[i]!, b = this.languages[j]!;
        const ra = new Map(
          table.filter((r) => r.language === a && r.n >= minComments).map((
            r,
          ) => [r.topic, r.ratio]),
        );
        const pairs = table.filter((r) =>
          r.language === b && r.n >= minComments && ra.has(r.topic)
        );
        const x = pairs.map((r) => ra.get(r.topic)!), y = pairs.map((r) => r.ratio);
        if (x.length < 3) {
          out.push({
            language_a: a,
            language_b: b,
            topics: x.length,
            spearman: NaN,
            spearman_p: NaN,
            kendall: NaN,
            kendall_p: NaN,
          });
          continue;
        }
        const s = spearman(x, y), t = kendall(x, y);
        out.push({
          language_a: a,
          language_b: b,
          topics: x.length,
          spearman: s.rho,
          spearman_p: s.p,
          kendall: t.tau,
          kendall_p: t.p,
        });
      }
    }
    return out;
  }

  /**
   * Toxic ratio by reply depth per language: depth 1 replies to a post (a parent that is not a
   * comment of the collection), depth d + 1 replies to a comment at depth d.
   */
  depthTable(): { depth: number; language: string; n: number; toxic: number; ratio: number }[] {
    const n = this.#parents.length;
    const depth = new Int32Array(n);
    const parentIdx = (i: number) => {
      const p = this.#parents[i];
      if (p === undefined) return -1;
      const direct = this.#ids.get(p);
      if (direct !== undefined) return direct;
      return p.startsWith("t1_") ? this.#ids.get(p.slice(3)) ?? -1 : -1;
    };
    for (let i = 0; i < n; i++) {
      if (depth[i]) continue;
      const chain: number[] = [];
      let j = i;
      while (j >= 0 && depth[j] === 0 && chain.length <= n) {
        chain.push(j);
        depth[j] = -1; // on the current chain (cycle guard)
        j = parentIdx(j);
      }
      let d = j >= 0 && depth[j]! > 0 ? depth[j]! : 0;
      for (let c = chain.length - 1; c >= 0; c--) depth[chain[c]!] = ++d;
    }
    const m = new Map<string, { n: number; toxic: number }>();
    for (let i = 0; i < n; i++) {
      const k = `${depth[i]}\u0000${this.languages[this.#lang[i]!]}`;
      const c = m.get(k) ?? { n: 0, toxic: 0 };
      c.n++;
      c.toxic += this.#tox[i]!;
      m.set(k, c);
    }
    return [...m].map(([k, c]) => {
      const [d, language] = k.split("\u0000") as [string, string];
      return { depth: Number(d), language, n: c.n, toxic: c.toxic, ratio: c.toxic / c.n };
    }).sort((a, b) => a.depth - b.depth || a.language.localeCompare(b.language));
  }
}
