/**
 * Chart builders for reports: each returns a {@linkcode Chart} whose Vega-Lite spec has its data
 * inlined, nice ticks, its legend below the plot (clear of the data), one colour per entity from
 * the report's {@linkcode ColorMap}, reference lines and error bars where given, and an axis that
 * starts at zero only where that is asked for.
 *
 * @module
 */
import { type Chart, checkChartName, type Row, type VegaLiteSpec } from "./chart.ts";
import { ColorMap, PALETTE } from "./colors.ts";

/** Options common to every builder. */
export interface ChartOptions {
  /** File stem of the saved spec (`chart-<name>.vl.json`). */
  name: string;
  /** Title above the plot (wrapped to the plot's width). */
  title: string;
  /** Heading of report.md the chart goes under (see {@linkcode Chart}). */
  section?: string;
  /** Plot width in px, axes and legend not included (default 560). */
  width?: number;
  /** Plot height in px (default 300). */
  height?: number;
  /** The report's colours (default: a fresh map for this chart). */
  colors?: ColorMap;
  /** x-axis title (default: the field name; null: none). */
  xTitle?: string | null;
  /** y-axis title (default: the field name; null: none). */
  yTitle?: string | null;
}

/** A dashed reference line across the plot, e.g. the dense model's score or chance. */
export interface RuleLine {
  /** Value on the y axis (a horizontal line). */
  y?: number;
  /** Value on the x axis (a vertical line). */
  x?: number;
  /** Text written at the line's end. */
  label?: string;
  /** Line colour (default dark grey). */
  color?: string;
}

/** Lower and upper bound fields of an error bar or band. */
export interface Interval {
  /** Field of the lower bound. */
  lo: string;
  /** Field of the upper bound. */
  hi: string;
}

// px per character: as the browser draws 11 px labels, and as Vega measures them without a canvas
// (0.8 × font size), which decides the chart's layout
const W = 560, H = 300, CHAR = 6.6, VEGA_CHAR = 8.8;

/** The smallest and largest of `values` (a loop: spreading 150k+ values overflows the stack). */
function extent(values: Iterable<number>): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** Non-finite numbers become `null` (JSON has no NaN); everything else is kept. */
function clean(rows: readonly Row[]): Row[] {
  return rows.map((r) =>
    Object.fromEntries(
      Object.entries(r).map((
        [k, v],
      ) => [k, v === undefined || (typeof v === "number" && !Number.isFinite(v)) ? null : v]),
    )
  );
}

/** The distinct values of `field` in order of appearance. */
function distinct(rows: readonly Row[], field: string): string[] {
  return [...new Set(rows.map((r) => String(r[field] ?? "")))];
}

/** The title as lines no wider than `width` px (Vega draws an array as several lines). */
export function wrapTitle(title: string, width: number): string | string[] {
  const max = Math.max(24, Math.floor(width / (0.8 * 14)));
  if (title.length <= max) return title;
  const lines: string[] = [];
  let line = "";
  for (const word of title.split(" ")) {
    if (line && line.length + 1 + word.length > max) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** A legend below the plot with as many columns as fit its width. */
function legend(names: readonly string[], width: number, title: string | null = null) {
  const longest = Math.max(4, ...names.map((n) => n.length));
  const col = longest * VEGA_CHAR + 36;
  const columns = Math.max(1, Math.min(names.length, Math.floor((width + 40) / col)));
  return { orient: "bottom", direction: "horizontal", columns, title };
}

function colorEncoding(
  rows: readonly Row[],
  field: string,
  colors: ColorMap,
  width: number,
  extra: { domain: string[]; range: string[] } = { domain: [], range: [] },
) {
  const names = distinct(rows, field).filter((n) => !extra.domain.includes(n));
  const s = colors.scale(names);
  const domain = [...s.domain, ...extra.domain];
  return {
    field,
    type: "nominal",
    sort: null,
    scale: { domain, range: [...s.range, ...extra.range] },
    legend: legend(domain, width),
  };
}

/** Layers drawing each rule as a dashed line with its label. */
function ruleLayers(
  rules: readonly RuleLine[],
  width: number,
  scales: { x: Record<string, unknown>; y: Record<string, unknown> },
): VegaLiteSpec[] {
  return rules.flatMap((r, i) => {
    const horizontal = r.y !== undefined;
    const v = horizontal ? r.y! : r.x!;
    if (!Number.isFinite(v)) return [];
    const color = r.color ?? "#444";
    const data = { values: [{ v, label: r.label ?? "" }] };
    // the chart's own scale settings, so that every layer agrees on the range
    const enc = { field: "v", type: "quantitative", scale: horizontal ? scales.y : scales.x };
    const pos = horizontal ? { y: enc } : { x: enc };
    const line: VegaLiteSpec = {
      data,
      mark: { type: "rule", strokeDash: [6, 4], strokeWidth: 1.5, color },
      encoding: pos,
    };
    if (!r.label) return [line];
    const text: VegaLiteSpec = {
      data,
      mark: horizontal
        ? { type: "text", align: "left", baseline: "middle", x: width + 4, color }
        : { type: "text", align: "center", baseline: "bottom", y: -4 - 13 * i, color },
      encoding: { ...pos, text: { field: "label" } },
    };
    return [line, text];
  });
}

function base(o: ChartOptions, layers: VegaLiteSpec[], rows: readonly Row[]): Chart {
  checkChartName(o.name);
  const width = o.width ?? W;
  const spec: VegaLiteSpec = {
    title: { text: wrapTitle(o.title, width) },
    width,
    height: o.height ?? H,
    data: { values: clean(rows) },
    layer: layers,
  };
  return { name: o.name, title: o.title, ...(o.section ? { section: o.section } : {}), spec };
}

/** Axis settings for category labels: level when they fit, slanted when they do not. */
function categoryAxis(labels: readonly string[], band: number): Record<string, unknown> {
  const longest = Math.max(1, ...labels.map((l) => l.length));
  return longest * CHAR <= band * 0.95
    ? { labelAngle: 0 }
    : { labelAngle: -35, labelAlign: "right", labelBaseline: "top", labelLimit: 600 };
}

/** Options of {@linkcode lineChart}. */
export interface LineChartOptions extends ChartOptions {
  /** One row per point. */
  data: readonly Row[];
  /** Field on the x axis (numbers). */
  x: string;
  /** Field on the y axis (numbers). */
  y: string;
  /** Field naming the line a point belongs to (one colour each). */
  series?: string;
  /** Field drawn as the line's dash pattern (a second grouping beside `series`). */
  dash?: string;
  /** Integer ticks only on the x axis (steps, days, layers, bits). */
  xInteger?: boolean;
  /** A log-scaled x axis. */
  xLog?: boolean;
  /** Start the y axis at zero (default false: the data's range, so that small differences show). */
  yZero?: boolean;
  /** Mark each point (default true when a line has at most 30 points). */
  points?: boolean;
  /** Points only, no lines joining them. */
  pointsOnly?: boolean;
  /** A shaded band between two fields (e.g. a confidence interval). */
  band?: Interval;
  /** Reference lines. */
  rules?: readonly RuleLine[];
  /** d3 format of the y axis labels (e.g. ".0%"). */
  yFormat?: string;
}

/**
 * Lines (or points) of several series over a numeric x axis.
 *
 * @example
 * ```ts
 * import { lineChart } from "./plots.ts";
 * const c = lineChart({
 *   name: "loss",
 *   title: "Training loss",
 *   data: [{ step: 1, loss: 2.5, run: "a" }, { step: 2, loss: 2.4, run: "a" }],
 *   x: "step",
 *   y: "loss",
 *   series: "run",
 *   xInteger: true,
 *   rules: [{ y: 2.45, label: "dense" }],
 * });
 * if (c.name !== "loss" || !("layer" in c.spec)) throw new Error("not a layered spec");
 * ```
 */
export function lineChart(o: LineChartOptions): Chart {
  const colors = o.colors ?? new ColorMap();
  const width = o.width ?? W;
  const perLine = o.series
    ? Math.max(
      0,
      ...distinct(o.data, o.series).map((s) => o.data.filter((r) => r[o.series!] === s).length),
    )
    : o.data.length;
  const points = o.points ?? perLine <= 30;
  const x = {
    field: o.x,
    type: "quantitative",
    title: o.xTitle ?? o.x,
    scale: o.xLog ? { type: "log" } : { zero: false, nice: true },
    axis: o.xInteger ? { tickMinStep: 1, format: "d" } : {},
  };
  const y = {
    field: o.y,
    type: "quantitative",
    title: o.yTitle ?? o.y,
    scale: { zero: o.yZero ?? false, nice: true },
    axis: o.yFormat ? { format: o.yFormat } : {},
  };
  const color = o.series ? colorEncoding(o.data, o.series, colors, width) : { value: PALETTE[0] };
  const mark = o.pointsOnly
    ? { type: "point", filled: true, size: 60 }
    : { type: "line", strokeWidth: 2, point: points ? { filled: true, size: 40 } : false };
  const layers: VegaLiteSpec[] = [];
  if (o.band) {
    layers.push({
      mark: { type: "area", opacity: 0.18 },
      encoding: {
        x,
        y: { field: o.band.lo, type: "quantitative" },
        y2: { field: o.band.hi },
        color: o.series ? { ...color, legend: null } : color,
      },
    });
  }
  layers.push({
    mark,
    encoding: {
      x,
      y,
      color,
      ...(o.dash
        ? {
          strokeDash: {
            field: o.dash,
            type: "nominal",
            sort: distinct(o.data, o.dash),
            legend: {
              ...legend(distinct(o.data, o.dash), width),
              symbolType: "stroke",
              symbolStrokeColor: "#444",
              symbolStrokeWidth: 2,
              symbolSize: 400,
            },
          },
        }
        : {}),
      order: { field: o.x },
      tooltip: [
        ...(o.series ? [{ field: o.series }] : []),
        ...(o.dash ? [{ field: o.dash }] : []),
        { field: o.x, type: "quantitative" },
        { field: o.y, type: "quantitative" },
      ],
    },
  });
  layers.push(...ruleLayers(o.rules ?? [], width, { x: x.scale, y: y.scale }));
  return base(o, layers, o.data);
}

/** Options of {@linkcode barChart}. */
export interface BarChartOptions extends ChartOptions {
  /** One row per bar. */
  data: readonly Row[];
  /** Category field (one bar, or one group of bars, each). */
  x: string;
  /** Value field. */
  y: string;
  /** Field of the bars within a group (grouped bars, one colour each). */
  series?: string;
  /** Error bars (e.g. bootstrap confidence intervals). */
  error?: Interval;
  /** Reference lines (values on the value axis: `y`). */
  rules?: readonly RuleLine[];
  /** Start the value axis at zero (default true; false shows small differences). */
  yZero?: boolean;
  /** The value axis' range. */
  yDomain?: readonly [number, number];
  /** Bars along the y axis, categories written beside them (long labels stay readable). */
  horizontal?: boolean;
  /** Write each bar's value at its end, with this d3 format (e.g. ".3f"). */
  valueFormat?: string;
  /** Draw bars from this value instead of the axis' start (e.g. 1 for ratios; implies no zero). */
  barBase?: number;
  /** Colour each bar by its category (no series): one colour per entity from `colors`. */
  colorByCategory?: boolean;
}

/**
 * Bars, grouped when `series` is given, with optional error bars and reference lines.
 *
 * @example
 * ```ts
 * import { barChart } from "./plots.ts";
 * const c = barChart({
 *   name: "acc",
 *   title: "Accuracy",
 *   data: [{ f: "a", v: 0.6, m: "x" }, { f: "a", v: 0.7, m: "y" }],
 *   x: "f",
 *   y: "v",
 *   series: "m",
 *   rules: [{ y: 0.5, label: "chance" }],
 * });
 * if (c.spec.width !== 560) throw new Error("default width");
 * ```
 */
export function barChart(o: BarChartOptions): Chart {
  const colors = o.colors ?? new ColorMap();
  const width = o.width ?? W, height = o.height ?? H;
  const cats = distinct(o.data, o.x);
  const cat = o.horizontal ? "y" : "x", val = o.horizontal ? "x" : "y";
  const off = o.horizontal ? "yOffset" : "xOffset";
  const band = (o.horizontal ? height : width) / Math.max(1, cats.length);
  const catEnc = {
    field: o.x,
    type: "nominal",
    sort: cats,
    title: o.xTitle ?? o.x,
    axis: o.horizontal ? { labelLimit: 400 } : categoryAxis(cats, band),
  };
  // without zero, an explicit range around the values, error bars and rules (every layer shares it)
  let domain = o.yDomain ? [...o.yDomain] : undefined;
  if (!domain && (o.yZero === false || o.barBase !== undefined)) {
    const vs = o.data.flatMap((r) => [r[o.y], ...(o.error ? [r[o.error.lo], r[o.error.hi]] : [])])
      .concat((o.rules ?? []).map((r) => r.y ?? NaN), [o.barBase ?? NaN]).filter((v): v is number =>
        typeof v === "number" && Number.isFinite(v)
      );
    const [lo, hi] = extent(vs),
      pad = (hi - lo) * 0.12 || Math.abs(hi) * 0.01 || 1;
    if (vs.length) domain = [lo - pad, hi + pad];
  }
  const valEnc = {
    field: o.y,
    type: "quantitative",
    title: o.yTitle ?? o.y,
    scale: { zero: o.yZero ?? o.barBase === undefined, nice: true, ...(domain ? { domain } : {}) },
  };
  const color = o.series
    ? colorEncoding(o.data, o.series, colors, width)
    : o.colorByCategory
    ? { ...colorEncoding(o.data, o.x, colors, width), legend: null }
    : { value: PALETTE[0] };
  const offset = o.series ? { [off]: { field: o.series, sort: distinct(o.data, o.series) } } : {};
  const layers: VegaLiteSpec[] = [{
    mark: { type: "bar", ...(domain ? { clip: true } : {}) },
    encoding: {
      [cat]: catEnc,
      [val]: valEnc,
      ...(o.barBase !== undefined ? { [`${val}2`]: { datum: o.barBase } } : {}),
      color,
      ...offset,
      tooltip: [
        { field: o.x },
        ...(o.series ? [{ field: o.series }] : []),
        { field: o.y, type: "quantitative" },
      ],
    },
  }];
  if (o.error) {
    layers.push({
      mark: { type: "rule", color: "#222", strokeWidth: 1.5 },
      encoding: {
        [cat]: catEnc,
        [val]: { field: o.error.lo, type: "quantitative", scale: valEnc.scale },
        [`${val}2`]: { field: o.error.hi },
        ...offset,
      },
    });
    for (const end of [o.error.lo, o.error.hi]) {
      layers.push({
        mark: { type: "tick", color: "#222", thickness: 1.5, size: 8 },
        encoding: {
          [cat]: catEnc,
          [val]: { field: end, type: "quantitative", scale: valEnc.scale },
          ...offset,
        },
      });
    }
  }
  if (o.valueFormat) {
    // beyond the error bar where there is one
    const at = o.error
      ? [{
        calculate: `isValid(datum['${o.error.hi}']) ? datum['${o.error.hi}'] : datum['${o.y}']`,
        as: "_labelAt",
      }]
      : [];
    layers.push({
      transform: at,
      mark: o.horizontal
        ? { type: "text", align: "left", dx: 4, fontSize: 10 }
        : { type: "text", baseline: "bottom", dy: -2, fontSize: 10 },
      encoding: {
        [cat]: catEnc,
        [val]: { field: o.error ? "_labelAt" : o.y, type: "quantitative", scale: valEnc.scale },
        text: { field: o.y, type: "quantitative", format: o.valueFormat },
        ...offset,
      },
    });
  }
  layers.push(
    ...(o.horizontal
      ? ruleLayers(
        (o.rules ?? []).map(({ y, x: _x, ...r }) => (y === undefined ? r : { ...r, x: y })),
        width,
        { x: valEnc.scale, y: {} },
      )
      : ruleLayers(o.rules ?? [], width, { x: {}, y: valEnc.scale })),
  );
  return base(o, layers, o.data);
}

/** Options of {@linkcode heatmapChart}. */
export interface HeatmapOptions extends Omit<ChartOptions, "width" | "height" | "colors"> {
  /** One row per cell. */
  data: readonly Row[];
  /** Column field. */
  x: string;
  /** Row field. */
  y: string;
  /** Value field (numbers; null leaves the cell blank). */
  value: string;
  /** Decimals written in each cell (default 3). */
  digits?: number;
  /** The colour scale's range (default: the data's). */
  domain?: readonly [number, number];
  /** `diverging` for signed values around 0 (e.g. cosines), `sequential` otherwise (default). */
  scheme?: "sequential" | "diverging";
  /** Cell width in px (default: 64). */
  cellWidth?: number;
  /** Cell height in px (default 24). */
  cellHeight?: number;
  /** Legend title (default: the value field). */
  valueTitle?: string;
}

/**
 * A heat map of a matrix with labelled rows and columns; each cell writes its value.
 *
 * @example
 * ```ts
 * import { heatmapChart } from "./plots.ts";
 * const c = heatmapChart({
 *   name: "f1",
 *   title: "F1",
 *   data: [{ r: "a", c: "x", v: 0.1 }, { r: "b", c: "x", v: null }],
 *   x: "c",
 *   y: "r",
 *   value: "v",
 *   domain: [0, 1],
 * });
 * if (c.spec.height !== 48) throw new Error("two rows of 24 px");
 * ```
 */
export function heatmapChart(o: HeatmapOptions): Chart {
  const cols = distinct(o.data, o.x), rows = distinct(o.data, o.y);
  const values = o.data.map((r) => r[o.value]).filter((v): v is number =>
    typeof v === "number" && Number.isFinite(v)
  );
  const diverging = o.scheme === "diverging";
  const [vlo, vhi] = extent(values);
  const lo = o.domain?.[0] ?? vlo, hi = o.domain?.[1] ?? vhi;
  const digits = o.digits ?? 3;
  const cellWidth = o.cellWidth ?? Math.max(44, 9 * (digits + 3));
  const cellHeight = o.cellHeight ?? 24;
  const data = o.data.map((r) => {
    const v = r[o.value];
    const t = typeof v === "number" && Number.isFinite(v) && hi > lo ? (v - lo) / (hi - lo) : 0.5;
    return { ...r, _dark: diverging ? Math.abs(t - 0.5) > 0.3 : t > 0.6 };
  });
  const longestCol = Math.max(1, ...cols.map((c) => c.length));
  const width = cellWidth * cols.length;
  const xAxis = longestCol * CHAR <= cellWidth * 0.95 ? { labelAngle: 0, orient: "top" } : {
    labelAngle: -40,
    labelAlign: "left",
    labelBaseline: "middle",
    orient: "top",
    labelLimit: 600,
  };
  const x = { field: o.x, type: "nominal", sort: cols, title: o.xTitle ?? null, axis: xAxis };
  const y = { field: o.y, type: "nominal", sort: rows, title: o.yTitle ?? null };
  const layers: VegaLiteSpec[] = [
    {
      mark: { type: "rect", stroke: "white", strokeWidth: 1 },
      encoding: {
        x,
        y,
        color: {
          field: o.value,
          type: "quantitative",
          title: o.valueTitle ?? o.value,
          scale: {
            ...(diverging
              ? { scheme: "redblue", domainMid: 0, reverse: true }
              : { scheme: "blues" }),
            ...(Number.isFinite(lo) && Number.isFinite(hi) && hi > lo ? { domain: [lo, hi] } : {}),
          },
          legend: {
            orient: "right",
            direction: "vertical",
            gradientLength: Math.min(200, Math.max(60, cellHeight * rows.length)),
          },
        },
        tooltip: [{ field: o.y }, { field: o.x }, { field: o.value, type: "quantitative" }],
      },
    },
    {
      transform: [{ filter: `isValid(datum['${o.value}'])` }],
      mark: { type: "text", fontSize: 10 },
      encoding: {
        x,
        y,
        text: { field: o.value, type: "quantitative", format: `.${digits}f` },
        color: { condition: { test: "datum._dark", value: "white" }, value: "#111" },
      },
    },
  ];
  return base(
    { ...o, width, height: cellHeight * rows.length },
    layers,
    data as Row[],
  );
}

/** One set of values for {@linkcode histogramChart} or {@linkcode boxPlotChart}. */
export interface ValueSeries {
  /** Legend or axis label. */
  label: string;
  /** The values (non-finite ones are left out). */
  values: ArrayLike<number>;
}

/** Options of {@linkcode histogramChart}. */
export interface HistogramOptions extends ChartOptions {
  /** Series drawn as density outlines on shared bins. */
  series: readonly ValueSeries[];
  /** Number of bins (default 40). */
  bins?: number;
  /** Draw the N(0,1) density for reference (and widen the range to ±4). */
  normal?: boolean;
}

/**
 * Overlaid density histograms (step outlines) on shared bins, optionally with N(0,1).
 *
 * @example
 * ```ts
 * import { histogramChart } from "./plots.ts";
 * const c = histogramChart({ name: "h", title: "z", series: [{ label: "x", values: [0, 1, 1] }], normal: true });
 * if (!JSON.stringify(c.spec).includes("N(0,1)")) throw new Error("no reference density");
 * ```
 */
export function histogramChart(o: HistogramOptions): Chart {
  const colors = o.colors ?? new ColorMap();
  const finite = o.series.map((s) => Array.from(s.values).filter(Number.isFinite));
  let [lo, hi] = extent(finite.flat());
  if (o.normal) {
    lo = Math.min(lo, -4);
    hi = Math.max(hi, 4);
  }
  if (!Number.isFinite(lo)) lo = 0, hi = 1;
  if (!(hi > lo)) hi = lo + 1;
  const bins = o.bins ?? 40, step = (hi - lo) / bins;
  const rows: Row[] = [];
  o.series.forEach((s, si) => {
    const counts = new Array<number>(bins).fill(0);
    for (const v of finite[si]!) counts[Math.min(bins - 1, Math.floor((v - lo) / step))]!++;
    const n = finite[si]!.length || 1;
    counts.forEach((c, i) =>
      rows.push({ series: s.label, x: lo + i * step, density: c / (n * step) })
    );
    rows.push({ series: s.label, x: hi, density: counts[bins - 1]! / (n * step) });
  });
  const extra = { domain: [] as string[], range: [] as string[] };
  if (o.normal) {
    extra.domain.push("N(0,1)");
    extra.range.push("#888888");
    for (let i = 0; i <= 120; i++) {
      const x = lo + ((hi - lo) * i) / 120;
      rows.push({ series: "N(0,1)", x, density: Math.exp(-x * x / 2) / Math.sqrt(2 * Math.PI) });
    }
  }
  const width = o.width ?? W;
  const color = colorEncoding(rows, "series", colors, width, extra);
  const x = {
    field: "x",
    type: "quantitative",
    title: o.xTitle ?? "value",
    scale: { zero: false, nice: false, domain: [lo, hi] },
  };
  const y = { field: "density", type: "quantitative", title: o.yTitle ?? "density" };
  const layers: VegaLiteSpec[] = [
    {
      transform: [{ filter: "datum.series !== 'N(0,1)'" }],
      mark: { type: "line", interpolate: "step-after", strokeWidth: 1.6 },
      encoding: { x, y, color, detail: { field: "series" } },
    },
    ...(o.normal
      ? [{
        transform: [{ filter: "datum.series === 'N(0,1)'" }],
        mark: { type: "line", strokeDash: [5, 4], strokeWidth: 1.5 },
        encoding: { x, y, color },
      }]
      : []),
  ];
  return base(o, layers, rows);
}

/** Options of {@linkcode boxPlotChart}. */
export interface BoxPlotOptions extends ChartOptions {
  /** One box per group. */
  groups: readonly ValueSeries[];
  /** Start the y axis at zero (default false). */
  yZero?: boolean;
}

/**
 * Box plots (whiskers at min and max, box at the quartiles, the median marked) side by side.
 *
 * @example
 * ```ts
 * import { boxPlotChart } from "./plots.ts";
 * const c = boxPlotChart({ name: "b", title: "W1", groups: [{ label: "L0", values: [1, 2, 3, 4] }] });
 * const row = (c.spec.data as { values: { median: number }[] }).values[0]!;
 * if (row.median !== 2.5) throw new Error(`median ${row.median}`);
 * ```
 */
export function boxPlotChart(o: BoxPlotOptions): Chart {
  const rows: Row[] = o.groups.map((g) => {
    const s = Float64Array.from(Array.from(g.values).filter(Number.isFinite)).sort();
    const q = (p: number) => {
      if (s.length === 0) return NaN;
      const pos = (s.length - 1) * p, i = Math.floor(pos), j = Math.min(i + 1, s.length - 1);
      return s[i]! + (s[j]! - s[i]!) * (pos - i);
    };
    return {
      group: g.label,
      min: q(0),
      q1: q(0.25),
      median: q(0.5),
      q3: q(0.75),
      max: q(1),
      n: s.length,
    };
  });
  const width = o.width ?? W;
  const labels = o.groups.map((g) => g.label);
  const x = {
    field: "group",
    type: "nominal",
    sort: labels,
    title: o.xTitle ?? null,
    axis: categoryAxis(labels, width / Math.max(1, labels.length)),
  };
  const y = (f: string) => ({
    field: f,
    type: "quantitative",
    title: o.yTitle ?? "value",
    scale: { zero: o.yZero ?? false, nice: true },
  });
  const tooltip = ["group", "n", "min", "q1", "median", "q3", "max"].map((f) => ({ field: f }));
  const layers: VegaLiteSpec[] = [
    { mark: { type: "rule", color: "#555" }, encoding: { x, y: y("min"), y2: { field: "max" } } },
    {
      mark: {
        type: "bar",
        size: Math.min(40, (width / Math.max(1, labels.length)) * 0.5),
        color: "#a6c8e6",
        stroke: PALETTE[0],
      },
      encoding: { x, y: y("q1"), y2: { field: "q3" }, tooltip },
    },
    {
      mark: {
        type: "tick",
        color: "#c0392b",
        thickness: 2,
        size: Math.min(40, (width / Math.max(1, labels.length)) * 0.5),
      },
      encoding: { x, y: y("median") },
    },
  ];
  return base(o, layers, rows);
}
