/**
 * New benchmark items from a fragment definition (the authors' YAML: a Wikidata SPARQL query and
 * sentence templates) and a local copy of that query's results, so that fragments can be built
 * offline and reproducibly (seeded).
 *
 * The construction follows the authors' `create_fragment.py`: rows without both times, with
 * end ≤ start or starting before 1675 are dropped (counted here); for each entity every ordered
 * pair of its relations whose time spans do not overlap and whose properties differ gives two
 * items, one where the property belongs to the earlier relation (de dicto is correct) and one
 * where it belongs to the later one (de re is correct); the question date is drawn uniformly
 * from the earlier span, the "current" date from the later one, and the two readings are offered
 * in random order. Where theirs is unordered (a Python set of premise lines, a DuckDB join),
 * ours keeps first-seen order.
 *
 * @module
 */
// @ts-types="./_js_yaml.d.ts"
import yaml from "npm:js-yaml@4.1.0";
import { FormatError } from "../core/errors.ts";
import { Rng } from "../core/rng.ts";
import type { AmbiguityItem, Reading } from "./benchmark.ts";
import { promptStyle } from "./parse.ts";
import { dayOf, pyFormat, strftime } from "./_text.ts";

/** A fragment definition (the YAML files under `definitions/`). */
export interface FragmentDefinition {
  /** Human-readable name. */
  name: string;
  /** The Wikidata SPARQL query whose results feed the fragment. */
  query: string;
  /** strftime format of the premise dates, e.g. "%B %Y". */
  datetime_strf: string;
  /** The premise that states the property does not change. */
  explicit_regularity: string;
  /** Premise per relation, with {entity} {relation} {start_time} {end_time}. */
  entity_relation_string: string;
  /** Premise per relation's property, with {relation} {property}. */
  relation_property_string: string;
  /** The ambiguous sentence (the first is used), with {entity} {property} {question_date}. */
  question_strings: string[];
  /** The two readings (the first pair is used), with {entity} {relation} {property} {question_date}. */
  interpretation_strings: { de_dicto: string; de_re: string }[];
}

/** Parses and checks a fragment definition; `source` names it in errors. */
export function parseFragmentDefinition(yamlText: string, source: string): FragmentDefinition {
  let doc: unknown;
  try {
    doc = yaml.load(yamlText, { filename: source });
  } catch (e) {
    throw new FormatError(`Cannot parse '${source}': ${(e as Error).message.split("\n")[0]}`);
  }
  const d = doc as Record<string, unknown>;
  if (typeof d !== "object" || d === null) {
    throw new FormatError(`'${source}' is not a YAML mapping`);
  }
  for (
    const f of [
      "name",
      "query",
      "datetime_strf",
      "explicit_regularity",
      "entity_relation_string",
      "relation_property_string",
    ]
  ) {
    if (typeof d[f] !== "string") {
      throw new FormatError(`'${source}': field '${f}' is missing or not text`);
    }
  }
  const qs = d.question_strings;
  if (!Array.isArray(qs) || qs.length === 0 || typeof qs[0] !== "string") {
    throw new FormatError(`'${source}': 'question_strings' must be a list of text`);
  }
  const is = d.interpretation_strings as { de_dicto?: unknown; de_re?: unknown }[] | undefined;
  if (
    !Array.isArray(is) || is.length === 0 || typeof is[0]?.de_dicto !== "string" ||
    typeof is[0]?.de_re !== "string"
  ) {
    throw new FormatError(
      `'${source}': 'interpretation_strings' must be a list of {de_dicto, de_re} text pairs`,
    );
  }
  return d as unknown as FragmentDefinition;
}

/** One row of the query results. */
export interface RelationRow {
  /** The entity (e.g. a town). */
  entityLabel: string;
  /** The time-bounded relation's value (e.g. a mayor). */
  relationLabel: string;
  /** The property's identifier (URI); pairs need different ones. */
  property: string;
  /** The property's label (e.g. a birth place). */
  propertyLabel: string;
  /** Start of the relation, xsd:dateTime or YYYY-MM-DD. */
  startTime?: string;
  /** End of the relation. */
  endTime?: string;
}

const COLUMNS = ["entityLabel", "relationLabel", "property", "propertyLabel"];

/**
 * Reads SPARQL 1.1 query results in JSON (`{head: {vars}, results: {bindings}}`), as the Wikidata
 * endpoint returns them, checking that the query's variables are there. The times may be bound as
 * `startTime`/`endTime` or, as the authors' queries select them, `startTimeLabel`/`endTimeLabel`
 * (the label of a date is the date).
 */
export function parseSparqlJson(text: string, source: string): RelationRow[] {
  let doc: { head?: { vars?: unknown }; results?: { bindings?: unknown } };
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new FormatError(`Cannot parse '${source}': ${(e as Error).message}`);
  }
  const vars = doc?.head?.vars, bindings = doc?.results?.bindings;
  if (
    !Array.isArray(vars) || !vars.every((v) => typeof v === "string") || !Array.isArray(bindings)
  ) {
    throw new FormatError(
      `'${source}' is not SPARQL JSON results (expected {"head": {"vars": [...]}, "results": {"bindings": [...]}})`,
    );
  }
  const timeVar = (t: string) => (vars.includes(t) ? t : `${t}Label`);
  const start = timeVar("startTime"), end = timeVar("endTime");
  for (const c of [...COLUMNS, start, end]) {
    if (!vars.includes(c)) {
      throw new FormatError(
        `'${source}': the results have no variable '${c}' (they have ${vars.join(", ")})`,
      );
    }
  }
  return bindings.map((b: Record<string, { value?: unknown }>, i: number) => {
    const get = (k: string) => {
      const v = b?.[k]?.value;
      return typeof v === "string" ? v : undefined;
    };
    const row: Partial<RelationRow> = {};
    for (const c of COLUMNS) {
      const v = get(c);
      if (v === undefined) {
        throw new FormatError(`'${source}': binding ${i + 1} has no value for '${c}'`);
      }
      (row as Record<string, string>)[c] = v;
    }
    const s = get(start), e = get(end);
    if (s !== undefined) row.startTime = s;
    if (e !== undefined) row.endTime = e;
    return row as RelationRow;
  });
}

/** Options of {@linkcode buildFragment}. */
export interface BuildOptions {
  /** Fragment key, e.g. "P6_P19" (the definition file's name). */
  key: string;
  /** Prompt style (default "direct"). */
  style?: string;
  /** Seed of the date draws, option order and sampling (default 42, the authors' default). */
  seed?: number;
  /** Keep this many items, half of each reading, drawn at random (default: all). */
  sample?: number;
}

/** The items of a fragment and what was left out. */
export interface BuiltFragment {
  /** The items, two per pair before sampling. */
  items: AmbiguityItem[];
  /** Pairs of relations found (each gives two items before sampling). */
  pairs: number;
  /** Rows dropped, by reason. */
  dropped: Record<string, number>;
}

interface Span {
  entity: string;
  relation: string;
  property: string;
  propertyLabel: string;
  start: number;
  end: number;
}

const MIN_START = dayOf("1675-01-01")!;

/**
 * Builds a fragment's items from its definition and query results.
 *
 * @example
 * ```ts
 * import { buildFragment } from "./fragment.ts";
 * const def = {
 *   name: "x", query: "", datetime_strf: "%B %Y", explicit_regularity: "R.",
 *   entity_relation_string: "{entity} had {relation} from {start_time} to {end_time}.",
 *   relation_property_string: "{relation} has {property}.",
 *   question_strings: ["{entity}'s thing had {property} in {question_date}."],
 *   interpretation_strings: [{ de_dicto: "{relation} then.", de_re: "{relation} now." }],
 * };
 * const row = (r: string, p: string, s: string, e: string) => ({
 *   entityLabel: "E", relationLabel: r, property: p, propertyLabel: p, startTime: s, endTime: e,
 * });
 * const built = buildFragment(def, [row("A", "p", "1990-01-01", "1995-01-01"),
 *   row("B", "q", "2000-01-01", "2005-01-01")], { key: "k" });
 * if (built.items.length !== 2 || built.pairs !== 1) throw new Error("one pair, two items");
 * ```
 */
export function buildFragment(
  def: FragmentDefinition,
  rows: readonly RelationRow[],
  options: BuildOptions,
): BuiltFragment {
  const style = promptStyle(options.style ?? "direct");
  const rng = new Rng(options.seed ?? 42);
  const dropped: Record<string, number> = {};
  const drop = (why: string) => (dropped[why] = (dropped[why] ?? 0) + 1);
  const byEntity = new Map<string, Span[]>();
  for (const r of rows) {
    if (r.startTime === undefined || r.endTime === undefined) {
      drop("missing start or end time");
      continue;
    }
    const start = dayOf(r.startTime), end = dayOf(r.endTime);
    if (start === null || end === null) drop("unparseable time");
    else if (end <= start) drop("end not after start");
    else if (start <= MIN_START) drop("start before 1675");
    else {
      const list = byEntity.get(r.entityLabel) ?? [];
      list.push({
        entity: r.entityLabel,
        relation: r.relationLabel,
        property: r.property,
        propertyLabel: r.propertyLabel,
        start,
        end,
      });
      byEntity.set(r.entityLabel, list);
    }
  }
  const where = `fragment '${options.key}'`;
  const fmtDay = (day: number) => strftime(day, def.datetime_strf, where);
  const premises = new Map<string, string>();
  for (const [entity, spans] of byEntity) {
    const relationLines = spans.map((s) =>
      pyFormat(def.entity_relation_string, {
        entity,
        relation: s.relation,
        start_time: fmtDay(s.start),
        end_time: fmtDay(s.end),
      }, where)
    );
    const propertyLines = [
      ...new Set(
        spans.map((s) =>
          pyFormat(def.relation_property_string, {
            relation: s.relation,
            property: s.propertyLabel,
          }, where)
        ),
      ),
    ];
    let text = relationLines.join("\n") + "\n\n" + propertyLines.join("\n") + "\n\n" +
      def.explicit_regularity + "\n\n";
    // number every non-empty line, as the authors do
    let n = 1;
    text = text.split(/(?<=\n)/).map((line) => (line.length > 1 ? `(P${n++}) ${line}` : line)).join(
      "",
    );
    premises.set(entity, text);
  }
  const items: AmbiguityItem[] = [];
  let pairs = 0;
  const readings: Reading[] = ["de_dicto", "de_re"];
  for (const [entity, spans] of byEntity) {
    for (const a of spans) {
      for (const b of spans) {
        if (a.property === b.property || !(Math.min(a.end, b.end) < Math.max(a.start, b.start))) {
          continue;
        }
        if (!(a.start < b.start)) continue;
        pairs++;
        for (const cls of [1, 2] as const) {
          const property = cls === 1 ? a.propertyLabel : b.propertyLabel;
          const questionDate = strftime(a.start + rng.int(a.end - a.start + 1), "%B %Y", where);
          const currentDate = strftime(b.start + rng.int(b.end - b.start + 1), "%B %Y", where);
          const order = rng.int(2) === 0 ? [1, 2] : [2, 1];
          let prompt = "Premises: \n" + premises.get(entity)! + "Question: \n" +
            `If it is currently ${currentDate}, what is the most likely interpretation of the following sentence` +
            ' "' +
            pyFormat(
              def.question_strings[0]!,
              { entity, property, question_date: questionDate },
              where,
            ) +
            '"\n';
          let labelNr: 1 | 2 = 1;
          order.forEach((reading, j) => {
            const name = readings[reading - 1]!;
            if (reading === cls) labelNr = (j + 1) as 1 | 2;
            prompt += `  ${j + 1}. ` + pyFormat(def.interpretation_strings[0]![name], {
              relation: reading === 1 ? a.relation : b.relation,
              property,
              question_date: questionDate,
              entity,
            }, where) + "\n";
          });
          prompt += "\n" + style.instruction;
          items.push({
            id: `${options.key}/${style.name}/${items.length + 1}`,
            fragment: options.key,
            style: style.name,
            labelNr,
            labelName: readings[cls - 1]!,
            messages: [prompt, ...style.followUps],
            entity,
            property,
            source: `${where} item ${items.length + 1}`,
          });
        }
      }
    }
  }
  if (options.sample === undefined) return { items, pairs, dropped };
  if (!Number.isInteger(options.sample) || options.sample <= 0 || options.sample % 2 !== 0) {
    throw new RangeError(`Sample size ${options.sample} is not a positive even number`);
  }
  const half = options.sample / 2;
  const picked: AmbiguityItem[] = [];
  for (const reading of readings) {
    const pool = items.filter((it) => it.labelName === reading);
    if (pool.length < half) {
      throw new RangeError(
        `Cannot sample ${half} ${reading} items from fragment '${options.key}': it has ${pool.length}`,
      );
    }
    for (let i = 0; i < half; i++) {
      const j = i + rng.int(pool.length - i);
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    picked.push(...pool.slice(0, half));
  }
  return { items: picked, pairs, dropped };
}
