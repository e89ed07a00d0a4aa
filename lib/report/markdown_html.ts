/**
 * Markdown → HTML for the subset the scripts' reports use: ATX headings, paragraphs, pipe tables,
 * `-`/`*`/`1.` lists, fenced code blocks, inline code, `**strong**`, `*emphasis*` and links.
 * Tables become `<table>`s whose numeric columns are right-aligned, with large integers grouped
 * by thousands and a real minus sign, each inside a box that scrolls sideways when it is wider
 * than the page.
 *
 * @module
 */

/** Escapes text for HTML. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

/** Inline Markdown: code spans, strong, emphasis and links; everything else escaped. */
export function inlineHtml(text: string): string {
  const parts = text.split(/(`[^`]*`)/);
  return parts.map((p, i) => {
    if (i % 2 === 1) return `<code>${escapeHtml(p.slice(1, -1))}</code>`;
    return escapeHtml(p)
      .replace(/\*\*([^*]+?)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^*\w])\*([^*\s][^*]*?)\*(?![*\w])/g, "$1<em>$2</em>")
      .replace(
        /\[([^\]]+)\]\(([^)\s]+)\)/g,
        (_, t: string, href: string) =>
          /^(https?:|#|\.?\/?[\w.-]+$)/.test(href)
            ? `<a href="${href}">${t}</a>`
            : `${t} (${href})`,
      );
  }).join("");
}

/** A heading of the converted document. */
export interface Heading {
  /** 1–6. */
  level: number;
  /** Its text, inline Markdown removed. */
  text: string;
  /** Its `id` in the page. */
  id: string;
}

/** The converted document: HTML blocks, each heading starting a new one. */
export interface HtmlDocument {
  /** Blocks of HTML in order; `blocks[i]` belongs to `headings[i - 1]` (block 0: before any). */
  blocks: string[];
  /** The headings in order. */
  headings: Heading[];
}

const NUMBER = /^[-−+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?%?$/;
const MISSING = new Set([
  "",
  "NaN",
  "-",
  "—",
  "–",
  "n/a",
  "null",
  "undefined",
  "Infinity",
  "-Infinity",
]);

/** A numeric cell for reading: grouped thousands in long integers, a minus sign for "-". */
export function formatNumberCell(s: string): string {
  let t = s.trim();
  if (!NUMBER.test(t)) return t;
  const neg = t.startsWith("-") || t.startsWith("−");
  if (neg) t = t.slice(1);
  const m = /^(\d+)(.*)$/.exec(t);
  if (m && m[1]!.length >= 5 && !/[eE]/.test(t)) {
    t = m[1]!.replace(/\B(?=(\d{3})+(?!\d))/g, "\u202f") + m[2];
  }
  return (neg ? "−" : "") + t;
}

function splitRow(line: string): string[] {
  let t = line.trim();
  if (t.startsWith("|")) t = t.slice(1);
  if (t.endsWith("|") && !t.endsWith("\\|")) t = t.slice(0, -1);
  const cells: string[] = [];
  let cur = "";
  for (let i = 0; i < t.length; i++) {
    const c = t[i]!;
    if (c === "\\" && t[i + 1] === "|") {
      cur += "|";
      i++;
    } else if (c === "|") {
      cells.push(cur.trim());
      cur = "";
    } else cur += c;
  }
  cells.push(cur.trim());
  return cells;
}

const SEPARATOR = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;

function tableHtml(lines: string[]): string {
  const header = splitRow(lines[0]!);
  const rows = lines.slice(2).map(splitRow);
  const numeric = header.map((_, j) => {
    let any = false;
    for (const r of rows) {
      const c = (r[j] ?? "").trim();
      if (MISSING.has(c)) continue;
      if (!NUMBER.test(c)) return false;
      any = true;
    }
    return any;
  });
  // a numeric column's integers written with its decimals ("1" among "0.250"s: "1.000")
  const decimals = header.map((_, j) => {
    if (!numeric[j]) return 0;
    const ds = new Set(
      rows.map((r) => /^[-−+]?\d*\.(\d+)$/.exec((r[j] ?? "").trim())?.[1]?.length).filter((d) =>
        d !== undefined
      ),
    );
    return ds.size === 1 ? [...ds][0]! : 0;
  });
  const cell = (c: string, j: number) => {
    const t = c.trim();
    if (t === "NaN") return "–";
    if (decimals[j]! > 0 && /^[-−+]?\d{1,4}$/.test(t)) {
      return formatNumberCell(`${t}.${"0".repeat(decimals[j]!)}`);
    }
    return formatNumberCell(t);
  };
  const cls = (j: number) => (numeric[j] ? ' class="num"' : "");
  const head = header.map((h, j) => `<th${cls(j)}>${inlineHtml(h)}</th>`).join("");
  const body = rows.map((r) =>
    "<tr>" +
    header.map((_, j) => {
      const c = r[j] ?? "";
      if (numeric[j]) return `<td class="num">${escapeHtml(cell(c, j))}</td>`;
      // short text stays on one line (the table scrolls); long text wraps
      return `<td${c.length > 32 ? ' class="long"' : ""}>${inlineHtml(c)}</td>`;
    }).join("") + "</tr>"
  ).join("\n");
  return `<div class="table-wrap"><table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table></div>`;
}

function slug(text: string, used: Set<string>): string {
  const base = text.toLowerCase().normalize("NFKD").replace(/[^\w]+/g, "-").replace(
    /^-+|-+$/g,
    "",
  ) || "section";
  let id = base, k = 2;
  while (used.has(id)) id = `${base}-${k++}`;
  used.add(id);
  return id;
}

/** Plain text of inline Markdown (for headings' names and ids). */
export function plainText(md: string): string {
  return md.replace(/`([^`]*)`/g, "$1").replace(/\*\*([^*]+)\*\*/g, "$1").replace(
    /\*([^*]+)\*/g,
    "$1",
  );
}

/**
 * Converts Markdown to HTML blocks split at the headings (so that charts can be placed in the
 * section they belong to).
 *
 * @example
 * ```ts
 * import { markdownToHtml } from "./markdown_html.ts";
 * const doc = markdownToHtml("# T\n\nSome `x`.\n\n## A\n\n| k | v |\n|---|---|\n| a | 12345 |");
 * if (doc.headings[1]!.text !== "A") throw new Error("heading");
 * if (!doc.blocks[2]!.includes('<td class="num">12\u202f345</td>')) throw new Error(doc.blocks[2]);
 * ```
 */
export function markdownToHtml(md: string): HtmlDocument {
  const lines = md.replace(/\r\n?/g, "\n").split("\n");
  const blocks: string[] = [];
  const headings: Heading[] = [];
  const used = new Set<string>();
  let cur: string[] = [];
  let i = 0;
  const isBlockStart = (l: string, next: string | undefined) =>
    /^#{1,6}\s/.test(l) || /^```/.test(l) || /^\s*([-*]|\d+\.)\s+/.test(l) ||
    (l.trim().startsWith("|") && next !== undefined && SEPARATOR.test(next));
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === "") {
      i++;
      continue;
    }
    const h = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) {
      blocks.push(cur.join("\n"));
      cur = [];
      const text = plainText(h[2]!);
      const id = slug(text, used);
      const level = h[1]!.length;
      headings.push({ level, text, id });
      cur.push(`<h${level} id="${id}">${inlineHtml(h[2]!)}</h${level}>`);
      i++;
      continue;
    }
    if (/^```/.test(line)) {
      const body: string[] = [];
      i++;
      while (i < lines.length && !/^```/.test(lines[i]!)) body.push(lines[i++]!);
      i++;
      cur.push(`<pre><code>${escapeHtml(body.join("\n"))}</code></pre>`);
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && SEPARATOR.test(lines[i + 1]!)) {
      const t = [line, lines[i + 1]!];
      i += 2;
      while (i < lines.length && lines[i]!.includes("|") && lines[i]!.trim() !== "") {
        t.push(lines[i++]!);
      }
      cur.push(tableHtml(t));
      continue;
    }
    const li = /^\s*([-*]|\d+\.)\s+(.*)$/.exec(line);
    if (li) {
      const ordered = /\d/.test(li[1]![0]!);
      const items: string[] = [];
      while (i < lines.length) {
        const m = /^\s*([-*]|\d+\.)\s+(.*)$/.exec(lines[i]!);
        if (m) items.push(m[2]!);
        else if (lines[i]!.trim() !== "" && /^\s+/.test(lines[i]!) && items.length) {
          items[items.length - 1] += " " + lines[i]!.trim();
        } else break;
        i++;
      }
      const tag = ordered ? "ol" : "ul";
      cur.push(`<${tag}>\n${items.map((t) => `<li>${inlineHtml(t)}</li>`).join("\n")}\n</${tag}>`);
      continue;
    }
    // a paragraph: its lines kept as lines (a line of the report stays a line of the page)
    const para: string[] = [];
    while (
      i < lines.length && lines[i]!.trim() !== "" &&
      (para.length === 0 || !isBlockStart(lines[i]!, lines[i + 1]))
    ) {
      para.push(lines[i++]!);
    }
    cur.push(`<p>\n${para.map(inlineHtml).join("\n")}\n</p>`);
  }
  blocks.push(cur.join("\n"));
  return { blocks, headings };
}
