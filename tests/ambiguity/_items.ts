// Synthetic benchmark items from a small hand-made fragment (no ../shared data needed).
import type { AmbiguityItem } from "../../lib/ambiguity/benchmark.ts";
import {
  buildFragment,
  type FragmentDefinition,
  type RelationRow,
} from "../../lib/ambiguity/fragment.ts";

export const DEFINITION: FragmentDefinition = {
  name: "mayor birth place",
  query: "SELECT ...",
  datetime_strf: "%B %Y",
  explicit_regularity: "A person's birth place does not change over time.",
  entity_relation_string: "{entity} had {relation} as mayor from {start_time} to {end_time}.",
  relation_property_string: "{relation}'s birth place is {property}.",
  question_strings: ["The birth place of {entity}'s mayor was {property} in {question_date}."],
  interpretation_strings: [{
    de_dicto: "{entity}'s mayor in {question_date} ({relation}) was born in {property}.",
    de_re: "{entity}'s current mayor ({relation}) was, as of {question_date}, born in {property}.",
  }],
};

export function row(
  entity: string,
  relation: string,
  place: string,
  start?: string,
  end?: string,
): RelationRow {
  const r: RelationRow = {
    entityLabel: entity,
    relationLabel: relation,
    property: `http://www.wikidata.org/entity/${place}`,
    propertyLabel: place,
  };
  if (start !== undefined) r.startTime = `${start}T00:00:00Z`;
  if (end !== undefined) r.endTime = `${end}T00:00:00Z`;
  return r;
}

/** 2·pairs items of one style: town k has two mayors born in different places. */
export function testItems(style: string, pairs: number): AmbiguityItem[] {
  const rows = Array.from({ length: pairs }, (_, k) => [
    row(`Town${k}`, `Anna${k}`, `Lyon${k}`, "1990-01-01", "1995-06-30"),
    row(`Town${k}`, `Bert${k}`, `Graz${k}`, "2001-03-01", "2010-12-31"),
  ]).flat();
  return buildFragment(DEFINITION, rows, { key: "T1_T2", style, seed: 7 }).items;
}
