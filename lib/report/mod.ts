/**
 * Reports: every script writes report.md (also printed) and report.html, one shell for all
 * scripts, with charts drawn by Vega-Lite as inline SVG and each chart's spec and data saved
 * beside the page.
 *
 * - {@linkcode reportFiles}: report.html and `chart-<name>.vl.json` for a script's outputs
 * - {@linkcode lineChart}, {@linkcode barChart}, {@linkcode heatmapChart},
 *   {@linkcode histogramChart}, {@linkcode boxPlotChart}: chart builders
 * - {@linkcode ColorMap}: one colour per entity across a report
 * - {@linkcode markdownTable}: the tables of report.md
 *
 * @example
 * ```ts
 * import { ColorMap, lineChart, markdownTable, reportFiles } from "./mod.ts";
 * const rows = [{ step: 1, loss: 2.5, run: "fp32" }, { step: 2, loss: 2.2, run: "fp32" }];
 * const md = `# Training\n\n## Loss\n\n${markdownTable(rows, ["run", "step", "loss"])}\n`;
 * const colors = new ColorMap(["fp32", "int8"]);
 * const chart = lineChart({
 *   name: "loss",
 *   title: "Training loss",
 *   section: "Loss",
 *   data: rows,
 *   x: "step",
 *   y: "loss",
 *   series: "run",
 *   colors,
 *   xInteger: true,
 * });
 * const files = await reportFiles({ title: "Training", markdown: md, charts: [chart] });
 * if (!files["report.html"]!.includes("<table>") || !files["chart-loss.vl.json"]) throw new Error();
 * ```
 *
 * @module
 */
export * from "./chart.ts";
export * from "./colors.ts";
export * from "./html.ts";
export * from "./markdown.ts";
export * from "./markdown_html.ts";
export * from "./plots.ts";
