/**
 * One colour per entity across a whole report: a tokenizer, a method or a setting keeps its colour
 * in every chart of the report, whichever subset of entities a chart shows.
 *
 * @module
 */

/** The palette colours are drawn from, in order (Tableau 10, then 10 darker or lighter hues). */
export const PALETTE: readonly string[] = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
  "#1f4e79",
  "#a0522d",
  "#8b1a1a",
  "#2f6f6a",
  "#2e6b2e",
  "#9a7d0a",
  "#6a3d6a",
  "#c4607a",
  "#5c4033",
  "#666666",
];

/** A Vega-Lite colour scale: the entities shown and their colours, in the same order. */
export interface ColorScale {
  /** Entity names. */
  domain: string[];
  /** One colour per name. */
  range: string[];
}

/**
 * Assigns each entity name a colour the first time it is seen and keeps it for the whole report.
 * Make one per report and pass it to every chart (`colors` option of the chart builders).
 *
 * @example
 * ```ts
 * import { ColorMap } from "./colors.ts";
 * const colors = new ColorMap(["bytes", "gpt2"]);
 * const a = colors.scale(["gpt2"]), b = colors.scale(["llama3", "gpt2"]);
 * if (a.range[0] !== b.range[1]) throw new Error("gpt2 changed colour between charts");
 * ```
 */
export class ColorMap {
  #colors = new Map<string, string>();
  #fixed: Record<string, string>;

  /**
   * A colour map that gives `names` the palette's first colours, in order.
   *
   * @param names entities to colour first, in this order (the palette's first colours)
   * @param fixed colours chosen by hand for some names (e.g. `{ dense: "#333333" }`)
   */
  constructor(names: Iterable<string> = [], fixed: Record<string, string> = {}) {
    this.#fixed = { ...fixed };
    for (const n of names) this.color(n);
  }

  /** The colour of `name`, assigning the next palette colour to a new name. */
  color(name: string): string {
    const fixed = this.#fixed[name];
    if (fixed !== undefined) return fixed;
    let c = this.#colors.get(name);
    if (c === undefined) {
      c = PALETTE[this.#colors.size % PALETTE.length]!;
      this.#colors.set(name, c);
    }
    return c;
  }

  /** The colour scale of `names` (in their order) for a Vega-Lite `color` encoding. */
  scale(names: readonly string[]): ColorScale {
    const domain = [...new Set(names)];
    return { domain, range: domain.map((n) => this.color(n)) };
  }
}
