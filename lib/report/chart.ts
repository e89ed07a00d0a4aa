/**
 * A report chart: a Vega-Lite spec with its data inlined, rendered to SVG in Deno without a
 * browser (Vega's headless renderer), and saved beside the report so that it can be restyled.
 *
 * @module
 */

/** A Vega-Lite v6 specification as plain JSON (see https://vega.github.io/vega-lite/docs/). */
export type VegaLiteSpec = Record<string, unknown>;

/** One row of chart data (`undefined` and non-finite numbers are saved as `null`). */
export type Row = Record<string, string | number | boolean | null | undefined>;

/** A chart of a report. */
export interface Chart {
  /** File stem: the spec is saved as `chart-<name>.vl.json`; letters, digits, `-` and `_`. */
  name: string;
  /** What the chart shows (the page uses it as the figure's accessible name). */
  title: string;
  /**
   * The heading of report.md that the chart belongs under (its text, or the start of it); the
   * chart goes at the end of that section. Without one, or when no heading matches, the chart
   * goes at the end of the report's first section.
   */
  section?: string;
  /** The Vega-Lite spec, data inlined. */
  spec: VegaLiteSpec;
}

/** Vega-Lite settings shared by every chart (they are written into each saved spec). */
export const CHART_CONFIG: Record<string, unknown> = {
  font: "Helvetica, Arial, sans-serif",
  background: "white",
  padding: 8,
  view: { stroke: "#ddd" },
  title: { fontSize: 14, fontWeight: "bold", anchor: "start", offset: 10, color: "#222" },
  axis: {
    labelFontSize: 11,
    titleFontSize: 12,
    titleFontWeight: "normal",
    gridColor: "#eee",
    labelLimit: 400,
    titlePadding: 8,
  },
  // numbers: nice ticks, none overlapping (category labels are all kept)
  axisQuantitative: { tickCount: 8, labelFlush: true, labelOverlap: true },
  legend: {
    orient: "bottom",
    direction: "horizontal",
    labelFontSize: 11,
    titleFontSize: 12,
    labelLimit: 400,
    symbolSize: 90,
    columnPadding: 16,
    rowPadding: 6,
  },
  // neither Vega's text metrics without a canvas nor the browser's font need be exact: labels
  // are measured generously, and the plot keeps its size while axes and legends add to it
  autosize: { type: "pad" },
};

const NAME = /^[A-Za-z0-9_-]+$/;

/** Throws unless `name` can be a chart's file stem. */
export function checkChartName(name: string): void {
  if (!NAME.test(name)) {
    throw new RangeError(
      `Cannot name a chart '${name}': expected letters, digits, '-' and '_' only`,
    );
  }
}

/**
 * Renders a Vega-Lite spec to one self-contained `<svg>` string (no scripts, no external
 * references). Vega and Vega-Lite are imported on the first call.
 *
 * @example
 * ```ts
 * import { renderSvg } from "./chart.ts";
 * const svg = await renderSvg({
 *   width: 200,
 *   height: 100,
 *   data: { values: [{ k: "a", v: 1 }, { k: "b", v: 2 }] },
 *   mark: "bar",
 *   encoding: { x: { field: "k", type: "nominal" }, y: { field: "v", type: "quantitative" } },
 * });
 * if (!svg.startsWith("<svg") || !svg.includes("<path")) throw new Error("no chart drawn");
 * ```
 */
export async function renderSvg(
  spec: VegaLiteSpec,
  options: { onWarning?: (message: string) => void } = {},
): Promise<string> {
  const [vega, vegaLite] = await Promise.all([
    import("npm:vega@6.4.0"),
    import("npm:vega-lite@6.5.0"),
  ]);
  // Vega's warnings go to `onWarning` (default: dropped), never to the script's stderr
  const logger = vega.logger(vega.Warn);
  const warn = (...args: unknown[]) => {
    options.onWarning?.(args.map(String).join(" "));
    return logger;
  };
  Object.assign(logger, { warn, info: () => logger, debug: () => logger });
  // deno-lint-ignore no-explicit-any
  const compiled = vegaLite.compile(spec as any, { logger }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none", logger });
  try {
    const svg = await view.toSVG();
    return svg.replace(/^<svg /, '<svg role="img" ');
  } finally {
    view.finalize();
  }
}

/** The spec as saved beside the report: `$schema`, the shared config, then the spec. */
export function fullSpec(spec: VegaLiteSpec): VegaLiteSpec {
  const config = {
    ...CHART_CONFIG,
    ...(spec.config as Record<string, unknown> | undefined),
  };
  return { $schema: "https://vega.github.io/schema/vega-lite/v6.json", ...spec, config };
}
