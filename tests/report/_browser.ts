// Headless Chromium for report checks: measures a report page in the browser (page width, each
// chart's size, marks and clipped labels, tables) and takes a full-page screenshot, with no npm
// browser driver: a copy of the page gets a small script that writes its measurements into the
// DOM, which `chromium --dump-dom` prints.

/** The first Chromium binary on PATH, or undefined. */
export function findChromium(): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
      } catch { /* not here */ }
    }
  }
  return undefined;
}

/** What the page measured in the browser. */
export interface PageMeasure {
  viewportWidth: number;
  scrollWidth: number;
  scrollHeight: number;
  tables: number;
  charts: {
    id: string;
    width: number;
    height: number;
    marks: number;
    /** Texts of the chart drawn (partly) outside its own SVG box. */
    clipped: string[];
    /** Pairs of tick labels of one axis that overlap. */
    overlaps: string[];
  }[];
  /** Elements wider than the page that are not inside a horizontally scrolling box. */
  tooWide: string[];
}

const PROBE = `<script>
(() => {
  const r = (e) => e.getBoundingClientRect();
  const charts = [...document.querySelectorAll("figure.chart")].map((f) => {
    const svg = f.querySelector("svg");
    if (!svg) return { id: f.id, width: 0, height: 0, marks: 0, clipped: [], overlaps: [] };
    const box = r(svg);
    const marks = svg.querySelectorAll(".role-mark > path, .role-mark > line, .role-mark > rect, .role-mark > text, .role-mark > g").length;
    const clipped = [...svg.querySelectorAll("text")].filter((t) => {
      const b = r(t);
      return t.textContent.trim() && b.width > 0 &&
        (b.left < box.left - 1 || b.right > box.right + 1 || b.top < box.top - 1 || b.bottom > box.bottom + 1);
    }).map((t) => t.textContent);
    const overlaps = [];
    for (const axis of svg.querySelectorAll(".role-axis-label")) {
      // level labels only: a slanted label's box overlaps its neighbours' by its slant
      const labels = [...axis.querySelectorAll("text")].filter((t) =>
        t.textContent.trim() && !/rotate\((?!0\))/.test(t.getAttribute("transform") || "")
      ).map((t) => ({ t: t.textContent, b: r(t) }));
      for (let i = 0; i < labels.length; i++) {
        for (let j = i + 1; j < labels.length; j++) {
          const a = labels[i].b, b = labels[j].b;
          if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) {
            overlaps.push(labels[i].t + " / " + labels[j].t);
          }
        }
      }
    }
    return { id: f.id, width: box.width, height: box.height, marks, clipped, overlaps };
  });
  const scrolls = (e) => {
    for (let p = e.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === "auto" || o === "scroll" || o === "hidden") return true;
    }
    return false;
  };
  const tooWide = [...document.body.querySelectorAll("*")].filter((e) =>
    r(e).right > innerWidth + 1 && !scrolls(e)
  ).slice(0, 10).map((e) => e.tagName + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string" ? "." + e.className : ""));
  const out = document.createElement("pre");
  out.id = "lmkit-measure";
  out.textContent = JSON.stringify({
    viewportWidth: innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    scrollHeight: document.documentElement.scrollHeight,
    tables: document.querySelectorAll("table").length,
    charts,
    tooWide,
  });
  document.body.appendChild(out);
})();
</script>`;

async function chromium(bin: string, args: string[]): Promise<string> {
  const o = await new Deno.Command(bin, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--hide-scrollbars",
      "--no-first-run",
      "--disable-extensions",
      "--mute-audio",
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!o.success) {
    throw new Error(`chromium ${args.join(" ")} failed: ${new TextDecoder().decode(o.stderr)}`);
  }
  return new TextDecoder().decode(o.stdout);
}

/**
 * Opens `dir/report.html` in headless Chromium at `width` px: returns the page's measurements,
 * and writes a full-page screenshot to `png`.
 */
export async function measureReport(
  bin: string,
  dir: string,
  png: string,
  width = 1280,
): Promise<PageMeasure> {
  const html = await Deno.readTextFile(`${dir}/report.html`);
  const probe = `${dir}/.report-probe.html`;
  await Deno.writeTextFile(probe, html.replace("</body>", `${PROBE}</body>`));
  try {
    const dom = await chromium(bin, [
      `--window-size=${width},1000`,
      "--dump-dom",
      `file://${probe}`,
    ]);
    const m = /<pre id="lmkit-measure">([^<]*)<\/pre>/.exec(dom);
    if (!m) throw new Error(`No measurements in the page of ${dir}`);
    const json = m[1]!.replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&gt;/g, ">")
      .replace(/&amp;/g, "&");
    const measure = JSON.parse(json) as PageMeasure;
    const height = Math.min(20000, Math.max(800, measure.scrollHeight));
    await chromium(bin, [
      `--window-size=${width},${height}`,
      `--screenshot=${png}`,
      `file://${dir}/report.html`,
    ]);
    return measure;
  } finally {
    await Deno.remove(probe).catch(() => {});
  }
}
