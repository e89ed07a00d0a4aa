/**
 * Small dependency-free SVG charts for reports: histograms (with an optional N(0,1) density),
 * box plots and bar charts. Every chart is one self-contained `<svg>` string.
 *
 * @module
 */

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const COLORS = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

/** Size and labels common to every chart. */
export interface ChartOptions {
  /** Title above the plot. */
  title: string;
  /** Width in px (default 520). */
  width?: number;
  /** Height in px (default 300). */
  height?: number;
  /** x-axis label. */
  xLabel?: string;
  /** y-axis label. */
  yLabel?: string;
}

interface Frame {
  w: number;
  h: number;
  l: number;
  r: number;
  t: number;
  b: number;
  sx: (x: number) => number;
  sy: (y: number) => number;
  parts: string[];
}

function frame(o: ChartOptions, x0: number, x1: number, y0: number, y1: number): Frame {
  const w = o.width ?? 520, h = o.height ?? 300, l = 56, r = 12, t = 28, b = 42;
  const sx = (x: number) => l + ((x - x0) / (x1 - x0 || 1)) * (w - l - r);
  const sy = (y: number) => h - b - ((y - y0) / (y1 - y0 || 1)) * (h - t - b);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="11">`,
    `<text x="${w / 2}" y="16" text-anchor="middle" font-size="13">${esc(o.title)}</text>`,
    `<line x1="${l}" y1="${h - b}" x2="${w - r}" y2="${h - b}" stroke="#333"/>`,
    `<line x1="${l}" y1="${t}" x2="${l}" y2="${h - b}" stroke="#333"/>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + ((y1 - y0) * i) / 4;
    parts.push(`<text x="${l - 4}" y="${sy(yv) + 4}" text-anchor="end">${fmt(yv)}</text>`);
  }
  if (o.xLabel) {
    parts.push(
      `<text x="${(l + w - r) / 2}" y="${h - 6}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    );
  }
  if (o.yLabel) {
    parts.push(
      `<text transform="translate(12 ${(t + h - b) / 2}) rotate(-90)" text-anchor="middle">${
        esc(o.yLabel)
      }</text>`,
    );
  }
  return { w, h, l, r, t, b, sx, sy, parts };
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 || v === 0
    ? v.toFixed(0)
    : Math.abs(v) >= 1
    ? v.toFixed(2)
    : v.toPrecision(2);
}

/** One histogram series. */
export interface Series {
  /** Legend label. */
  label: string;
  /** Values. */
  values: ArrayLike<number>;
}

/**
 * Overlaid density histograms of several series on shared bins, optionally with the N(0,1)
 * density for reference.
 *
 * @example
 * ```ts
 * import { histogramSvg } from "./svg.ts";
 * const svg = histogramSvg([{ label: "x", values: [0, 1, 1, 2] }], { title: "t", normal: true });
 * if (!svg.startsWith("<svg")) throw new Error("not an svg");
 * ```
 */
export function histogramSvg(
  series: Series[],
  o: ChartOptions & { bins?: number; normal?: boolean },
): string {
  const all = series.flatMap((s) => Array.from(s.values)).filter(Number.isFinite);
  let lo = Math.min(...all), hi = Math.max(...all);
  if (o.normal) {
    lo = Math.min(lo, -4);
    hi = Math.max(hi, 4);
  }
  if (!(hi > lo)) hi = lo + 1;
  const bins = o.bins ?? 40, width = (hi - lo) / bins;
  const dens = series.map((s) => {
    const c = new Array(bins).fill(0);
    let n = 0;
    for (let i = 0; i < s.values.length; i++) {
      const v = s.values[i] as number;
      if (!Number.isFinite(v)) continue;
      c[Math.min(bins - 1, Math.floor((v - lo) / width))]++;
      n++;
    }
    return c.map((k) => k / (n * width));
  });
  const top = Math.max(...dens.flat(), o.normal ? 0.4 : 0) * 1.05;
  const f = frame(o, lo, hi, 0, top);
  dens.forEach((d, si) => {
    const col = COLORS[si % COLORS.length];
    const pts = d.map((v, i) =>
      `${f.sx(lo + i * width)},${f.sy(v)} ${f.sx(lo + (i + 1) * width)},${f.sy(v)}`
    ).join(" ");
    f.parts.push(
      `<polyline fill="none" stroke="${col}" stroke-width="1.5" points="${f.sx(lo)},${
        f.sy(0)
      } ${pts} ${f.sx(hi)},${f.sy(0)}"/>`,
    );
    f.parts.push(
      `<text x="${f.w - f.r - 4}" y="${f.t + 14 * (si + 1)}" text-anchor="end" fill="${col}">${
        esc(series[si]!.label)
      }</text>`,
    );
  });
  if (o.normal) {
    const pts = Array.from({ length: 121 }, (_, i) => {
      const x = lo + ((hi - lo) * i) / 120;
      return `${f.sx(x)},${f.sy(Math.exp(-x * x / 2) / Math.sqrt(2 * Math.PI))}`;
    }).join(" ");
    f.parts.push(`<polyline fill="none" stroke="#777" stroke-dasharray="4 3" points="${pts}"/>`);
    f.parts.push(
      `<text x="${f.w - f.r - 4}" y="${
        f.t + 14 * (series.length + 1)
      }" text-anchor="end" fill="#777">N(0,1)</text>`,
    );
  }
  for (let i = 0; i <= 4; i++) {
    const xv = lo + ((hi - lo) * i) / 4;
    f.parts.push(
      `<text x="${f.sx(xv)}" y="${f.h - f.b + 14}" text-anchor="middle">${fmt(xv)}</text>`,
    );
  }
  return f.parts.join("") + "</svg>";
}

/** Box plots (min, quartiles, median, max) of several groups side by side. */
export function boxSvg(groups: Series[], o: ChartOptions): string {
  const stats = groups.map((g) => {
    const s = Float64Array.from(Array.from(g.values).filter(Number.isFinite)).sort();
    const q = (p: number) => {
      const pos = (s.length - 1) * p, i = Math.floor(pos), j = Math.min(i + 1, s.length - 1);
      return (s[i] as number) + ((s[j] as number) - (s[i] as number)) * (pos - i);
    };
    return [q(0), q(0.25), q(0.5), q(0.75), q(1)] as const;
  });
  const lo = Math.min(...stats.map((s) => s[0])), hi = Math.max(...stats.map((s) => s[4]));
  const f = frame(o, 0, groups.length, Math.min(0, lo), hi * 1.05);
  const bw = (f.w - f.l - f.r) / groups.length;
  stats.forEach((s, i) => {
    const cx = f.sx(i + 0.5), half = bw * 0.3;
    f.parts.push(
      `<line x1="${cx}" y1="${f.sy(s[0])}" x2="${cx}" y2="${f.sy(s[4])}" stroke="#555"/>`,
    );
    f.parts.push(
      `<rect x="${cx - half}" y="${f.sy(s[3])}" width="${2 * half}" height="${
        Math.max(1, f.sy(s[1]) - f.sy(s[3]))
      }" fill="#9ecae1" stroke="#1f77b4"/>`,
    );
    f.parts.push(
      `<line x1="${cx - half}" y1="${f.sy(s[2])}" x2="${cx + half}" y2="${
        f.sy(s[2])
      }" stroke="#d62728" stroke-width="2"/>`,
    );
    f.parts.push(
      `<text x="${cx}" y="${f.h - f.b + 14}" text-anchor="middle">${esc(groups[i]!.label)}</text>`,
    );
  });
  return f.parts.join("") + "</svg>";
}

/** A bar chart of labelled values. */
export function barSvg(
  bars: { label: string; value: number }[],
  o: ChartOptions & { baseline?: number },
): string {
  const hi = Math.max(...bars.map((b) => b.value), o.baseline ?? 0) * 1.08;
  const f = frame(o, 0, bars.length, 0, hi);
  const bw = (f.w - f.l - f.r) / bars.length;
  bars.forEach((b, i) => {
    const x = f.sx(i) + bw * 0.15;
    f.parts.push(
      `<rect x="${x}" y="${f.sy(b.value)}" width="${bw * 0.7}" height="${
        f.sy(0) - f.sy(b.value)
      }" fill="${COLORS[i % COLORS.length]}"/>`,
    );
    f.parts.push(
      `<text x="${x + bw * 0.35}" y="${f.sy(b.value) - 3}" text-anchor="middle">${
        b.value.toFixed(3)
      }</text>`,
    );
    f.parts.push(
      `<text x="${x + bw * 0.35}" y="${f.h - f.b + 14}" text-anchor="middle" font-size="9">${
        esc(b.label)
      }</text>`,
    );
  });
  if (o.baseline !== undefined) {
    f.parts.push(
      `<line x1="${f.l}" y1="${f.sy(o.baseline)}" x2="${f.w - f.r}" y2="${
        f.sy(o.baseline)
      }" stroke="#333" stroke-dasharray="5 3"/>`,
    );
  }
  return f.parts.join("") + "</svg>";
}

/**
 * Grouped bars: for each group (x position) one bar per series, with a legend, e.g. accuracy per
 * fragment for each model and prompt style.
 *
 * @example
 * ```ts
 * import { groupedBarSvg } from "./svg.ts";
 * const svg = groupedBarSvg(["a", "b"], [{ label: "s", values: [0.5, 0.7] }], { title: "t" });
 * if ((svg.match(/<rect/g) ?? []).length !== 2 + 1) throw new Error("two bars and one legend key");
 * ```
 */
export function groupedBarSvg(
  groups: readonly string[],
  series: readonly { label: string; values: readonly number[] }[],
  o: ChartOptions & { max?: number; baseline?: number },
): string {
  for (const s of series) {
    if (s.values.length !== groups.length) {
      throw new RangeError(
        `Series '${s.label}' has ${s.values.length} values for ${groups.length} groups`,
      );
    }
  }
  const hi = o.max ?? Math.max(...series.flatMap((s) => s.values), o.baseline ?? 0) * 1.08;
  const f = frame(o, 0, groups.length, 0, hi || 1);
  const gw = (f.w - f.l - f.r) / Math.max(groups.length, 1);
  const bw = (gw * 0.8) / Math.max(series.length, 1);
  groups.forEach((g, gi) => {
    series.forEach((s, si) => {
      const v = s.values[gi]!;
      const x = f.sx(gi) + gw * 0.1 + si * bw;
      f.parts.push(
        `<rect x="${x}" y="${f.sy(v)}" width="${bw * 0.92}" height="${f.sy(0) - f.sy(v)}" fill="${
          COLORS[si % COLORS.length]
        }"><title>${esc(`${s.label} · ${g}: ${v.toFixed(3)}`)}</title></rect>`,
      );
    });
    f.parts.push(
      `<text x="${f.sx(gi) + gw / 2}" y="${f.h - f.b + 14}" text-anchor="middle" font-size="9">${
        esc(g)
      }</text>`,
    );
  });
  series.forEach((s, si) => {
    const y = f.t + 4 + 13 * si;
    f.parts.push(
      `<rect x="${f.w - f.r - 150}" y="${y}" width="9" height="9" fill="${
        COLORS[si % COLORS.length]
      }"/><text x="${f.w - f.r - 137}" y="${y + 8}">${esc(s.label)}</text>`,
    );
  });
  if (o.baseline !== undefined) {
    f.parts.push(
      `<line x1="${f.l}" y1="${f.sy(o.baseline)}" x2="${f.w - f.r}" y2="${
        f.sy(o.baseline)
      }" stroke="#333" stroke-dasharray="5 3"/>`,
    );
  }
  return f.parts.join("") + "</svg>";
}

/**
 * A heat map of a matrix with labelled rows and columns; each cell shows its value (NaN: blank).
 *
 * @example
 * ```ts
 * import { heatmapSvg } from "./svg.ts";
 * const svg = heatmapSvg(["a", "b"], ["x"], [[0.1], [0.9]], { title: "t" });
 * if ((svg.match(/<rect/g) ?? []).length !== 2) throw new Error("one cell per value");
 * ```
 */
export function heatmapSvg(
  rows: readonly string[],
  cols: readonly string[],
  values: readonly (readonly number[])[],
  o: { title: string; min?: number; max?: number; digits?: number; cell?: number },
): string {
  const finite = values.flat().filter(Number.isFinite);
  const lo = o.min ?? Math.min(...finite), hi = o.max ?? Math.max(...finite);
  const cw = o.cell ?? 64,
    ch = 24,
    left = 8 + 7 * Math.max(...rows.map((r) => r.length), 4),
    top = 40 + 6 * Math.min(20, Math.max(...cols.map((c) => c.length), 4));
  const w = left + cw * cols.length + 12, h = top + ch * rows.length + 12;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="11">`,
    `<text x="${w / 2}" y="16" text-anchor="middle" font-size="13">${esc(o.title)}</text>`,
  ];
  cols.forEach((c, j) => {
    const x = left + cw * (j + 0.5);
    parts.push(
      `<text transform="translate(${x} ${top - 6}) rotate(-40)" font-size="10">${esc(c)}</text>`,
    );
  });
  rows.forEach((r, i) => {
    const y = top + ch * i;
    parts.push(`<text x="${left - 6}" y="${y + ch / 2 + 4}" text-anchor="end">${esc(r)}</text>`);
    cols.forEach((_, j) => {
      const v = values[i]?.[j] ?? NaN;
      const t = Number.isFinite(v) ? (hi > lo ? (v - lo) / (hi - lo) : 0.5) : NaN;
      // white → blue
      const fill = Number.isFinite(t)
        ? `rgb(${Math.round(255 - 224 * t)},${Math.round(255 - 136 * t)},${
          Math.round(255 - 75 * t)
        })`
        : "#eee";
      parts.push(
        `<rect x="${left + cw * j}" y="${y}" width="${cw - 1}" height="${ch - 1}" fill="${fill}"/>`,
      );
      if (Number.isFinite(v)) {
        parts.push(
          `<text x="${left + cw * (j + 0.5)}" y="${y + ch / 2 + 4}" text-anchor="middle" fill="${
            t > 0.6 ? "#fff" : "#000"
          }">${v.toFixed(o.digits ?? 3)}</text>`,
        );
      }
    });
  });
  return parts.join("") + "</svg>";
}

/** A standalone HTML page from Markdown-ish sections of text and SVG. */
export function htmlPage(title: string, blocks: string[]): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title>` +
    `<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}svg{margin:4px}</style>` +
    `</head><body><h1>${esc(title)}</h1>${blocks.join("\n")}</body></html>`;
}

/** Lines (or points) of several series over a shared x axis. */
export function lineSvg(
  series: { label: string; points: [number, number][] }[],
  o: ChartOptions & { points?: boolean },
): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0])),
    ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const pad = (y1 - y0) * 0.05 || 1;
  const f = frame(o, x0, x1 === x0 ? x0 + 1 : x1, y0 - pad, y1 + pad);
  series.forEach((s, si) => {
    const col = COLORS[si % COLORS.length];
    const pts = s.points.slice().sort((a, b) => a[0] - b[0]).map(([x, y]) =>
      `${f.sx(x)},${f.sy(y)}`
    );
    if (!o.points) {
      f.parts.push(
        `<polyline fill="none" stroke="${col}" stroke-width="1.8" points="${pts.join(" ")}"/>`,
      );
    }
    for (const p of pts) {
      const [cx, cy] = p.split(",");
      f.parts.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${col}"/>`);
    }
    f.parts.push(
      `<text x="${f.l + 8}" y="${f.t + 14 * (si + 1)}" fill="${col}">${esc(s.label)}</text>`,
    );
  });
  for (let i = 0; i <= 4; i++) {
    const xv = x0 + ((x1 - x0) * i) / 4;
    f.parts.push(
      `<text x="${f.sx(xv)}" y="${f.h - f.b + 14}" text-anchor="middle">${fmt(xv)}</text>`,
    );
  }
  return f.parts.join("") + "</svg>";
}
