/**
 * The one report shell of every script: report.md rendered as HTML (headings, the run's settings,
 * tables as `<table>`s, lists, code) with the charts as inline SVG in the sections they belong to.
 * The page is self-contained: inline CSS and SVG, no scripts, no external URLs; it opens offline.
 *
 * @module
 */
import { type Chart, checkChartName, fullSpec, renderSvg } from "./chart.ts";
import { escapeHtml, markdownToHtml } from "./markdown_html.ts";

const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1d232b;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 32px 48px; background: #fff;
  min-height: 100vh; box-shadow: 0 0 0 1px #e3e6ea; }
h1 { font-size: 1.7em; line-height: 1.25; margin: 0.2em 0 0.6em; }
h2 { font-size: 1.3em; margin: 1.8em 0 0.5em; padding-bottom: 0.2em; border-bottom: 1px solid #e3e6ea; }
h3, h4, h5, h6 { font-size: 1.08em; margin: 1.4em 0 0.4em; }
p, li { overflow-wrap: anywhere; max-width: 100ch; }
code { font: 0.9em/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  background: #f0f2f5; padding: 0.05em 0.3em; border-radius: 3px; overflow-wrap: anywhere; }
pre { background: #f6f8fa; padding: 10px 12px; border-radius: 4px; overflow-x: auto; max-width: 100%; }
pre code { background: none; padding: 0; overflow-wrap: normal; }
.settings { background: #f6f8fa; border: 1px solid #e3e6ea; border-radius: 6px; padding: 4px 16px;
  margin: 0 0 1.2em; font-size: 0.94em; }
.table-wrap { overflow-x: auto; width: fit-content; max-width: 100%; margin: 0.8em 0 1.2em;
  border: 1px solid #e3e6ea; border-radius: 4px; }
table { border-collapse: collapse; font-size: 0.9em; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eceef1; text-align: left; vertical-align: top;
  white-space: nowrap; }
td.long { min-width: 24ch; max-width: 60ch; white-space: normal; overflow-wrap: break-word; }
td.num, th.num { text-align: right; white-space: nowrap; }
thead th { background: #f3f5f7; position: sticky; top: 0; font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr:hover { background: #eef4fb; }
figure.chart { display: inline-block; vertical-align: top; margin: 1em 24px 1.4em 0; max-width: 100%;
  overflow-x: auto; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
figcaption { font-size: 0.82em; color: #5b6570; margin-top: 2px; }
footer { margin-top: 3em; font-size: 0.82em; color: #5b6570; }
`;

/** What a report page is made of. */
export interface ReportInput {
  /** The page's title (the browser tab; the visible title is report.md's first heading). */
  title: string;
  /** The report in Markdown (report.md). */
  markdown: string;
  /** Charts, each placed under the heading it names (see {@linkcode Chart}). */
  charts?: readonly Chart[];
  /** Called with each warning of Vega or Vega-Lite about a chart (default: dropped). */
  onWarning?: (message: string, chart: Chart) => void;
}

/** A chart's file name beside the report. */
export function chartFileName(chart: Chart): string {
  return `chart-${chart.name}.vl.json`;
}

/**
 * The report page: report.md as HTML with the charts (rendered to SVG) in their sections.
 *
 * @example
 * ```ts
 * import { reportHtml } from "./html.ts";
 * import { barChart } from "./plots.ts";
 * const chart = barChart({ name: "n", title: "N", data: [{ k: "a", v: 1 }], x: "k", y: "v", section: "Counts" });
 * const html = await reportHtml({ title: "T", markdown: "# T\n\n## Counts\n\n| k | v |\n|---|---|\n| a | 1 |", charts: [chart] });
 * if (!/<h2 id="counts">[^]*<table>[^]*<svg/.test(html)) throw new Error("chart not under its heading");
 * ```
 */
export async function reportHtml(input: ReportInput): Promise<string> {
  const charts = input.charts ?? [];
  const doc = markdownToHtml(input.markdown);
  // ids inside each SVG (clip paths, gradients) made unique across the page
  const svgs = (await Promise.all(
    charts.map((c) => renderSvg(fullSpec(c.spec), { onWarning: (m) => input.onWarning?.(m, c) })),
  )).map((svg, i) =>
    svg.replace(/\bid="([^"]+)"/g, `id="c${i}-$1"`).replace(/url\(#([^)]+)\)/g, `url(#c${i}-$1)`)
      .replace(/href="#([^"]+)"/g, `href="#c${i}-$1"`)
  );
  const figure = (c: Chart, i: number) =>
    `<figure class="chart" id="chart-${c.name}" aria-label="${escapeHtml(c.title)}">\n${
      svgs[i]
    }\n<figcaption>Spec and data: <a href="${chartFileName(c)}">${
      chartFileName(c)
    }</a></figcaption>\n</figure>`;
  // which block each chart goes at the end of: the section whose heading it names, else the first
  const first = doc.headings.findIndex((h) => h.level >= 2);
  const fallback = first < 0 ? doc.blocks.length - 1 : first; // before the first subheading
  const at = charts.map((c) => {
    if (!c.section) return fallback;
    const want = c.section.toLowerCase();
    const k = doc.headings.findIndex((h) => h.text.toLowerCase().startsWith(want));
    return k < 0 ? fallback : k + 1;
  });
  const blocks = doc.blocks.map((b, k) => {
    const mine = charts.map((c, i) => (at[i] === k ? figure(c, i) : "")).filter((f) => f);
    // the run's settings: what the first heading's section says before its first table
    if (k === 1 && doc.headings[0]?.level === 1) b = settingsBlock(b);
    return [b, ...mine].filter((x) => x).join("\n");
  });
  return [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(input.title)}</title>`,
    `<style>${CSS}</style>`,
    "</head>",
    "<body>",
    "<main>",
    ...blocks,
    `<footer>Written by lmkit. Each chart's Vega-Lite spec and data: chart-*.vl.json beside this page.</footer>`,
    "</main>",
    "</body>",
    "</html>",
    "",
  ].join("\n");
}

/** Wraps the paragraphs and lists after the title (up to the first table or figure) in a box. */
function settingsBlock(block: string): string {
  const start = block.indexOf("\n");
  if (start < 0) return block;
  const head = block.slice(0, start), rest = block.slice(start + 1);
  const stop = rest.search(/<div class="table-wrap">|<pre>/);
  const intro = stop < 0 ? rest : rest.slice(0, stop), tail = stop < 0 ? "" : rest.slice(stop);
  if (!intro.trim()) return block;
  return `${head}\n<section class="settings">\n${intro.trimEnd()}\n</section>\n${tail}`;
}

/**
 * The report's files beside report.md: `report.html` and each chart's Vega-Lite spec with its data
 * (`chart-<name>.vl.json`), for a script's `writeOutputs` map.
 *
 * @example
 * ```ts
 * import { reportFiles } from "./html.ts";
 * import { lineChart } from "./plots.ts";
 * const c = lineChart({ name: "loss", title: "Loss", data: [{ s: 1, l: 2 }, { s: 2, l: 1 }], x: "s", y: "l" });
 * const files = await reportFiles({ title: "Run", markdown: "# Run", charts: [c] });
 * if (Object.keys(files).join() !== "report.html,chart-loss.vl.json") throw new Error("files");
 * ```
 */
export async function reportFiles(input: ReportInput): Promise<Record<string, string>> {
  const charts = input.charts ?? [];
  const names = new Set<string>();
  for (const c of charts) {
    checkChartName(c.name);
    if (names.has(c.name)) throw new RangeError(`Two charts are named '${c.name}'`);
    names.add(c.name);
  }
  const files: Record<string, string> = { "report.html": await reportHtml(input) };
  for (const c of charts) {
    files[chartFileName(c)] = JSON.stringify(fullSpec(c.spec), null, 1) + "\n";
  }
  return files;
}
