// Python's str.format with named fields and strftime's %B/%b/%Y/%m/%d, for fragment templates.
import { FormatError } from "../core/errors.ts";

/** Fills `{name}` fields of a Python format string; `{{` and `}}` are literal braces. */
export function pyFormat(template: string, fields: Record<string, string>, where: string): string {
  return template.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (m, name: string | undefined) => {
    if (m === "{{") return "{";
    if (m === "}}") return "}";
    if (name === undefined || !Object.hasOwn(fields, name)) {
      throw new FormatError(
        `${where}: template field '{${name}}' is not one of ${
          Object.keys(fields).map((f) => `{${f}}`).join(", ")
        }`,
      );
    }
    return fields[name]!;
  });
}

const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

/** Formats a UTC day number (days since 1970-01-01) with strftime's %B %b %Y %m %d %%. */
export function strftime(day: number, format: string, where: string): string {
  const d = new Date(day * 86_400_000);
  return format.replace(/%(.)/g, (_m, c: string) => {
    switch (c) {
      case "B":
        return MONTHS[d.getUTCMonth()]!;
      case "b":
        return MONTHS[d.getUTCMonth()]!.slice(0, 3);
      case "Y":
        return String(d.getUTCFullYear()).padStart(4, "0");
      case "m":
        return String(d.getUTCMonth() + 1).padStart(2, "0");
      case "d":
        return String(d.getUTCDate()).padStart(2, "0");
      case "%":
        return "%";
      default:
        throw new FormatError(
          `${where}: strftime directive '%${c}' is not supported (use %B %b %Y %m %d)`,
        );
    }
  });
}

/** The UTC day number of an xsd:dateTime / ISO date "YYYY-MM-DD[T…]", or null when invalid. */
export function dayOf(text: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:$|T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?$)/
    .exec(
      text.trim(),
    );
  if (!m) return null;
  const y = Number(m[1]), mo = Number(m[2]), d = Number(m[3]);
  const t = Date.UTC(y, mo - 1, d);
  const back = new Date(t);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) {
    return null;
  }
  return Math.round(t / 86_400_000);
}
