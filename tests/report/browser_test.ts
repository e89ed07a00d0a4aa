// Every script's report.html, as people see it: each script runs with small flags (its own tests'),
// and its page opens in headless Chromium at 1280 px, which must show nothing wider than the page,
// every chart drawn (nonzero size, marks, no label outside its chart, no overlapping axis labels),
// as many <table>s as report.md has tables, and nothing fetched from outside the page. Each
// chart's saved spec must render again without a Vega warning. Screenshots go to
// $LMKIT_SCREENSHOTS (default: a temporary folder, printed). Skipped without Chromium (Debian
// package `chromium`). About 2.5 minutes on 2 cores.
import { assert, assertEquals } from "@std/assert";
import { renderSvg } from "../../lib/report/chart.ts";
import { findChromium, measureReport, type PageMeasure } from "./_browser.ts";
import { type ReportRun, runReport, RUNS } from "./_runs.ts";

const chromium = findChromium();
const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

interface Outcome {
  run: ReportRun;
  skipped?: string;
  error?: string;
  seconds?: number;
  dir?: string;
  measure?: PageMeasure;
}

/** The Markdown tables of report.md (their separator rows). */
function countTables(md: string): number {
  return md.split("\n").filter((l) => /^\s*\|?(\s*:?-{3,}:?\s*\|)+\s*:?-{0,}:?\s*$/.test(l))
    .length;
}

async function checkFiles(dir: string): Promise<{ charts: string[]; problems: string[] }> {
  const problems: string[] = [];
  const html = await Deno.readTextFile(`${dir}/report.html`);
  const md = await Deno.readTextFile(`${dir}/report.md`);
  if (/<script|<link|<iframe|<img|\bsrc=|url\(\s*['"]?(https?:)?\/\//i.test(html)) {
    problems.push("the page loads something (script, link, img, src or url())");
  }
  if (/href="https?:/.test(html)) problems.push("the page links outside itself");
  if (html.includes("|---|")) problems.push("raw Markdown table text in the page");
  const charts = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
    /^chart-.*\.vl\.json$/.test(n)
  ).sort();
  for (const name of charts) {
    const spec = JSON.parse(await Deno.readTextFile(`${dir}/${name}`));
    if (!String(spec.$schema).includes("vega-lite")) problems.push(`${name}: no $schema`);
    if (!JSON.stringify(spec).includes('"values":[')) problems.push(`${name}: no inline data`);
    if (!html.includes(`id="${name.replace(/\.vl\.json$/, "")}"`)) {
      problems.push(`${name}: not in the page`);
    }
    const warnings: string[] = [];
    await renderSvg(spec, { onWarning: (m) => warnings.push(m) });
    for (const w of warnings) problems.push(`${name}: Vega warning: ${w}`);
  }
  const tables = countTables(md);
  const inPage = (html.match(/<table>/g) ?? []).length;
  if (inPage !== tables) problems.push(`${inPage} <table>s in the page for ${tables} in report.md`);
  return { charts, problems };
}

Deno.test({
  name: "report.html of every script, in headless Chromium: fits the page, charts drawn, tables",
  ignore: chromium === undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const t0 = performance.now();
    const tmp = await Deno.makeTempDir({ prefix: "lmkit-reports-" });
    const shots = Deno.env.get("LMKIT_SCREENSHOTS") ?? `${tmp}-screenshots`;
    await Deno.mkdir(shots, { recursive: true });
    const outcomes: Outcome[] = RUNS.map((run) => ({ run }));
    // the scripts one after the other (each uses both cores), the browser on the finished ones
    const browser: Promise<void>[] = [];
    try {
      for (const o of outcomes) {
        const missing = [];
        for (const p of o.run.needs ?? []) if (!(await exists(p))) missing.push(p);
        if (missing.length) {
          o.skipped = `needs ${missing.join(", ")}`;
          continue;
        }
        const r = await runReport(o.run, tmp);
        o.seconds = r.seconds;
        o.dir = r.dir;
        if (r.code !== 0) {
          o.error = `exit ${r.code}: ${r.stderr.slice(-2000)}`;
          continue;
        }
        browser.push(
          measureReport(chromium!, r.dir, `${shots}/${o.run.name}.png`).then(
            (m) => void (o.measure = m),
            (e) => void (o.error = String(e)),
          ),
        );
      }
      await Promise.all(browser);
      for (const o of outcomes) {
        await t.step({
          name: o.run.script,
          ignore: o.skipped !== undefined,
          fn: async () => {
            assertEquals(o.error, undefined, o.error);
            const m = o.measure!;
            assert(
              m.scrollWidth <= m.viewportWidth,
              `page ${m.scrollWidth} px wide in a ${m.viewportWidth} px window`,
            );
            assertEquals(m.tooWide, [], "elements wider than the page");
            const { charts, problems } = await checkFiles(o.dir!);
            assertEquals(problems, []);
            assert(charts.length > 0, "no chart");
            assertEquals(m.charts.length, charts.length, "charts in the page vs chart files");
            for (const c of m.charts) {
              assert(c.width > 50 && c.height > 50, `${c.id}: ${c.width} × ${c.height} px`);
              assert(c.marks > 0, `${c.id}: no marks drawn`);
              assertEquals(c.clipped, [], `${c.id}: text outside the chart`);
              assertEquals(c.overlaps, [], `${c.id}: overlapping axis labels`);
            }
            assertEquals(m.tables, countTables(await Deno.readTextFile(`${o.dir}/report.md`)));
          },
        });
      }
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      const times = outcomes.map((o) =>
        `${o.run.name} ${o.skipped ? `skipped (${o.skipped})` : `${o.seconds?.toFixed(1)} s`}`
      ).join(", ");
      console.log(
        `reports: ${times}; ${((performance.now() - t0) / 1000).toFixed(0)} s in all; ` +
          `screenshots in ${shots}`,
      );
    }
  },
});

if (chromium === undefined) {
  console.log(
    "tests/report/browser_test.ts skipped: no chromium on PATH (Debian: apt-get install chromium)",
  );
}
