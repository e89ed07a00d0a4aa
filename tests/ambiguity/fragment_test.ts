// Building new items from a fragment definition and SPARQL results: a hand-worked entity, the
// dropped-row counts, seeding and sampling, the real definitions, and the premise block of a
// released item rebuilt from its own facts.
import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  buildFragment,
  parseFragmentDefinition,
  parseSparqlJson,
} from "../../lib/ambiguity/fragment.ts";
import { loadItems } from "../../lib/ambiguity/benchmark.ts";
import { FormatError } from "../../lib/core/errors.ts";
import { freshSeed } from "../_util.ts";
import { DEFINITION, row } from "./_items.ts";
import { BENCHMARK, haveBenchmark } from "./_shared.ts";

const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];
const monthIndex = (s: string) => {
  const [m, y] = s.split(" ");
  return Number(y) * 12 + MONTHS.indexOf(m!);
};

Deno.test("a hand-worked entity: pairs, premises, dates inside their spans, the gold option", () => {
  const rows = [
    row("Town", "Anna", "Lyon", "1990-01-01", "1995-06-30"),
    row("Town", "Bert", "Graz", "2001-03-01", "2010-12-31"),
    row("Town", "Cleo", "Lyon", "2012-05-01", "2015-05-01"), // same place as Anna: no (Anna, Cleo) pair
    row("Town", "Dora", "Oslo", "2009-01-01", "2011-01-01"), // overlaps Bert: no (Bert, Dora) pair
  ];
  const seed = freshSeed();
  const built = buildFragment(DEFINITION, rows, { key: "X", seed, style: "step_by_step5" });
  // ordered pairs (earlier, later) with different places and disjoint spans:
  // (Anna,Bert) (Anna,Dora) (Bert,Cleo) (Dora,Cleo)
  assertEquals(built.pairs, 4);
  assertEquals(built.items.length, 8);
  assertEquals(built.dropped, {});
  const premises = "Premises: \n" +
    "(P1) Town had Anna as mayor from January 1990 to June 1995.\n" +
    "(P2) Town had Bert as mayor from March 2001 to December 2010.\n" +
    "(P3) Town had Cleo as mayor from May 2012 to May 2015.\n" +
    "(P4) Town had Dora as mayor from January 2009 to January 2011.\n\n" +
    "(P5) Anna's birth place is Lyon.\n(P6) Bert's birth place is Graz.\n" +
    "(P7) Cleo's birth place is Lyon.\n(P8) Dora's birth place is Oslo.\n\n" +
    "(P9) A person's birth place does not change over time.\n\n";
  const spans: Record<string, [string, string, string]> = {
    Anna: ["January 1990", "June 1995", "Lyon"],
    Bert: ["March 2001", "December 2010", "Graz"],
    Cleo: ["May 2012", "May 2015", "Lyon"],
    Dora: ["January 2009", "January 2011", "Oslo"],
  };
  const pairs = [["Anna", "Bert"], ["Anna", "Dora"], ["Bert", "Cleo"], ["Dora", "Cleo"]];
  built.items.forEach((it, i) => {
    const [early, late] = pairs[Math.floor(i / 2)]!;
    const reading = i % 2 === 0 ? "de_dicto" : "de_re";
    assertEquals(it.labelName, reading, `seed ${seed}`);
    assertEquals(it.property, spans[reading === "de_dicto" ? early! : late!]![2]);
    const m =
      /^If it is currently (\w+ \d{4}), .*sentence "The birth place of Town's mayor was (\w+) in (\w+ \d{4})\."\n {2}1\. (.*)\n {2}2\. (.*)\n$/m
        .exec(it.messages[0]!.slice(premises.length + "Question: \n".length));
    assert(m, it.messages[0]);
    const [, current, place, question, opt1, opt2] = m;
    assertEquals(place, it.property);
    const inSpan = (d: string, who: string) =>
      monthIndex(spans[who]![0]) <= monthIndex(d) && monthIndex(d) <= monthIndex(spans[who]![1]);
    assert(
      inSpan(question!, early!) && inSpan(current!, late!),
      `seed ${seed}: ${question} ${current}`,
    );
    const dicto = `Town's mayor in ${question} (${early}) was born in ${place}.`;
    const re = `Town's current mayor (${late}) was, as of ${question}, born in ${place}.`;
    assert((opt1 === dicto && opt2 === re) || (opt1 === re && opt2 === dicto), `${opt1} / ${opt2}`);
    assertEquals((it.labelNr === 1 ? opt1 : opt2) === dicto, reading === "de_dicto");
    const expected = premises + "Question: \n" +
      `If it is currently ${current}, what is the most likely interpretation of the following sentence` +
      ` "The birth place of Town's mayor was ${place} in ${question}."\n  1. ${opt1}\n  2. ${opt2}\n\n` +
      "When answering, let's consider both options, and think step by step.\n" +
      "DO NOT repeat the premises, only refer to their number.";
    assertEquals(it.messages, [
      expected,
      'Based on this, what is your final answer, "Option 1" or "Option 2"?',
    ]);
  });
});

Deno.test("rows the authors' filter drops are counted by reason", () => {
  const built = buildFragment(DEFINITION, [
    row("T", "A", "P", "1990-01-01", "1995-01-01"),
    row("T", "B", "Q", "2000-01-01"), // no end
    row("T", "C", "R", "1990-13-01", "1995-01-01"), // month 13
    row("T", "D", "S", "1999-01-01", "1999-01-01"), // end = start
    row("T", "E", "U", "1600-01-01", "1700-01-01"), // before 1675
    row("T", "F", "V", "2001-01-01", "2002-01-01"),
  ], { key: "X" });
  assertEquals(built.dropped, {
    "missing start or end time": 1,
    "unparseable time": 1,
    "end not after start": 1,
    "start before 1675": 1,
  });
  assertEquals(built.pairs, 1);
});

Deno.test("seeded: equal seeds give equal items; balanced sampling; bad sample sizes fail", () => {
  const rows = Array.from({ length: 12 }, (_, k) => [
    row(`T${k}`, `A${k}`, "P", "1900-01-01", "1950-01-01"),
    row(`T${k}`, `B${k}`, "Q", "1960-01-01", "2000-01-01"),
  ]).flat();
  const a = buildFragment(DEFINITION, rows, { key: "X", seed: 3 });
  const b = buildFragment(DEFINITION, rows, { key: "X", seed: 3 });
  const c = buildFragment(DEFINITION, rows, { key: "X", seed: 4 });
  assertEquals(a.items, b.items);
  assert(JSON.stringify(a.items) !== JSON.stringify(c.items));
  const s = buildFragment(DEFINITION, rows, { key: "X", seed: 3, sample: 10 });
  assertEquals(s.items.filter((i) => i.labelName === "de_dicto").length, 5);
  assertEquals(s.items.filter((i) => i.labelName === "de_re").length, 5);
  assertEquals(new Set(s.items.map((i) => i.id)).size, 10);
  assertThrows(
    () => buildFragment(DEFINITION, rows, { key: "X", sample: 7 }),
    RangeError,
    "not a positive even number",
  );
  assertThrows(
    () => buildFragment(DEFINITION, rows, { key: "X", sample: 40 }),
    RangeError,
    "Cannot sample 20 de_dicto items from fragment 'X': it has 12",
  );
  assertThrows(
    () => buildFragment(DEFINITION, rows, { key: "X", style: "cot" }),
    RangeError,
    "Unknown prompt style 'cot'",
  );
  const badTemplate = { ...DEFINITION, relation_property_string: "{relation} {place}" };
  assertThrows(
    () => buildFragment(badTemplate, rows, { key: "X" }),
    FormatError,
    "template field '{place}' is not one of {relation}, {property}",
  );
});

Deno.test("SPARQL JSON results: read, and bad documents fail with one sentence", () => {
  const doc = {
    head: {
      vars: [
        "entity",
        "entityLabel",
        "relation",
        "relationLabel",
        "property",
        "propertyLabel",
        "startTimeLabel",
        "endTimeLabel",
      ],
    },
    results: {
      bindings: [{
        entityLabel: { type: "literal", value: "Town", "xml:lang": "en" },
        relationLabel: { type: "literal", value: "Anna" },
        property: { type: "uri", value: "http://www.wikidata.org/entity/Q456" },
        propertyLabel: { type: "literal", value: "Lyon" },
        startTimeLabel: { type: "literal", value: "1990-01-01T00:00:00Z" },
      }],
    },
  };
  assertEquals(parseSparqlJson(JSON.stringify(doc), "r.json"), [{
    entityLabel: "Town",
    relationLabel: "Anna",
    property: "http://www.wikidata.org/entity/Q456",
    propertyLabel: "Lyon",
    startTime: "1990-01-01T00:00:00Z",
  }]);
  assertThrows(() => parseSparqlJson("{", "r.json"), FormatError, "Cannot parse 'r.json'");
  assertThrows(
    () => parseSparqlJson("{}", "r.json"),
    FormatError,
    "'r.json' is not SPARQL JSON results",
  );
  const noEnd = { ...doc, head: { vars: doc.head.vars.filter((v) => v !== "endTimeLabel") } };
  assertThrows(
    () => parseSparqlJson(JSON.stringify(noEnd), "r.json"),
    FormatError,
    "'r.json': the results have no variable 'endTimeLabel'",
  );
  const noLabel = structuredClone(doc) as { results: { bindings: Record<string, unknown>[] } };
  delete noLabel.results.bindings[0]!.propertyLabel;
  assertThrows(
    () => parseSparqlJson(JSON.stringify(noLabel), "r.json"),
    FormatError,
    "binding 1 has no value for 'propertyLabel'",
  );
});

Deno.test({
  name: "the five released definitions parse; the abandoned attempt fails clearly",
  ignore: !haveBenchmark,
  fn: async () => {
    const dir = `${BENCHMARK}definitions`;
    const names = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".yaml")).map((e) =>
      e.name
    ).sort();
    assertEquals(names.length, 5);
    for (const n of names) {
      const d = parseFragmentDefinition(await Deno.readTextFile(`${dir}/${n}`), n);
      assert(d.question_strings[0]!.includes("{property}"), n);
    }
    assertThrows(
      () =>
        parseFragmentDefinition(
          Deno.readTextFileSync(`${dir}/attempts/P750_P740.yaml`),
          "P750_P740.yaml",
        ),
      FormatError,
      "'P750_P740.yaml': 'interpretation_strings' must be a list of {de_dicto, de_re} text pairs",
    );
    assertThrows(
      () => parseFragmentDefinition("name: [", "x.yaml"),
      FormatError,
      "Cannot parse 'x.yaml'",
    );
    assertThrows(
      () => parseFragmentDefinition("name: x\n", "x.yaml"),
      FormatError,
      "'x.yaml': field 'query' is missing",
    );
  },
});

Deno.test({
  name: "a released item's premises and options are rebuilt from its own facts",
  ignore: !haveBenchmark,
  fn: async () => {
    const def = parseFragmentDefinition(
      await Deno.readTextFile(`${BENCHMARK}definitions/P6_P19.yaml`),
      "P6_P19.yaml",
    );
    const item = (await loadItems(`${BENCHMARK}benchmark/chatgpt/P6_P19_results_direct.jsonl`))[0]!;
    const text = item.messages[0]!;
    const facts = [
      ...text.matchAll(
        /\(P\d+\) (.+) had (.+) as their head of state from (\w+ \d{4}) to (\w+ \d{4})\./g,
      ),
    ];
    const born = new Map(
      [...text.matchAll(/\(P\d+\) (.+)'s birth place is (.+)\./g)].map((m) => [m[1]!, m[2]!]),
    );
    const iso = (s: string) => {
      const [m, y] = s.split(" ");
      return `${y}-${String(MONTHS.indexOf(m!) + 1).padStart(2, "0")}-01`;
    };
    const rows = facts.map(([, entity, person, start, end]) =>
      row(entity!, person!, born.get(person!)!, iso(start!), iso(end!))
    );
    const built = buildFragment(def, rows, { key: "P6_P19" });
    const block = (t: string) => {
      const [relations, properties, rest] = t.slice(0, t.indexOf("Question: \n")).split("\n\n");
      const strip = (s: string) => s.split("\n").map((l) => l.replace(/^\(P\d+\) /, ""));
      return [strip(relations!), strip(properties!).sort(), rest];
    };
    // same relation premises in the same order, the same property premises (theirs come from a
    // Python set: the order differs), the same regularity
    assertEquals(block(built.items[0]!.messages[0]!), block(text));
    // the released item's own pair is among ours, with the same gold reading for its property
    const mine = built.items.filter((it) =>
      it.property === item.property && it.labelName === item.labelName
    );
    const options = (t: string) =>
      [...t.matchAll(/^ {2}[12]\. (.*)$/gm)].map((m) => m[1]!.replace(/\w+ \d{4}/g, "DATE")).sort();
    assert(
      mine.some((it) => JSON.stringify(options(it.messages[0]!)) === JSON.stringify(options(text))),
      `no rebuilt item offers the options ${options(text).join(" / ")}`,
    );
  },
});
