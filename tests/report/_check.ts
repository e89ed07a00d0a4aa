// What every script's report must be, checked without a browser: report.html renders report.md
// (its tables as <table>s, no raw Markdown), with exactly the given charts as inline SVG that have
// marks, each chart's Vega-Lite spec and data beside it, and nothing loaded from outside the page.
import { assert, assertEquals } from "@std/assert";

/** Checks `dir`'s report.html and chart files; `charts` are the chart names expected. */
export async function assertReport(dir: string, charts: readonly string[]): Promise<void> {
  const html = await Deno.readTextFile(`${dir}/report.html`);
  const md = await Deno.readTextFile(`${dir}/report.md`);
  assert(html.startsWith("<!doctype html>"), "report.html is an HTML page");
  assert(!/<script|<link|\bsrc=|url\(\s*['"]?https?:/i.test(html), "the page loads nothing");
  assert(!html.includes("|---|"), "no raw Markdown table in the page");
  const tables = md.split("\n").filter((l) => /^\|(---\|)+$/.test(l.trim())).length;
  assertEquals((html.match(/<table>/g) ?? []).length, tables, "one <table> per Markdown table");
  const title = /^# (.*)$/m.exec(md)?.[1];
  if (title) assert(/<h1 id="[^"]*">/.test(html), "the report's title is a heading");
  const files = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("chart-"))
    .sort();
  assertEquals(files, charts.map((c) => `chart-${c}.vl.json`).sort(), "chart files");
  for (const c of charts) {
    const fig = new RegExp(`<figure class="chart" id="chart-${c}"[^>]*>\\s*<svg[^]*?</svg>`).exec(
      html,
    );
    assert(fig, `chart ${c} drawn in the page`);
    assert(/role-mark/.test(fig[0]) && /<(path|line|text)/.test(fig[0]), `chart ${c} has marks`);
    const spec = JSON.parse(await Deno.readTextFile(`${dir}/chart-${c}.vl.json`));
    assert(String(spec.$schema).includes("vega-lite"), `chart-${c}.vl.json is a Vega-Lite spec`);
    assert(Array.isArray(spec.data?.values) && spec.data.values.length > 0, `${c}: inline data`);
  }
}
