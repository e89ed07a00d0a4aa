/**
 * The two prompt styles of the ambiguous-definite-descriptions benchmark and answer parsing
 * exactly as the authors' code does it (Python `re.search` with their patterns, transcribed so
 * that JavaScript matches the same characters: Python's `\d` is any Unicode decimal digit, its
 * `\s` includes U+001C–U+001F and U+0085 but not U+FEFF, and its `.` excludes only "\n").
 *
 * @module
 */

/** A prompt style: the text of each user turn after the first, and how the answer is read. */
export interface PromptStyle {
  /** Style key as stored in `prompt_style`. */
  name: string;
  /** Instruction that ends the first user message. */
  instruction: string;
  /** Further user messages, one per extra turn (the answer comes from the last reply). */
  followUps: string[];
}

/** The styles of the released benchmark. */
export const PROMPT_STYLES: Readonly<Record<string, PromptStyle>> = {
  direct: {
    name: "direct",
    instruction: 'Answer only with "Option 1" or "Option 2", explain your decision after.',
    followUps: [],
  },
  step_by_step5: {
    name: "step_by_step5",
    instruction: "When answering, let's consider both options, and think step by step.\n" +
      "DO NOT repeat the premises, only refer to their number.",
    followUps: ['Based on this, what is your final answer, "Option 1" or "Option 2"?'],
  },
};

/** Looks up a style by name, or a RangeError listing the known ones. */
export function promptStyle(name: string): PromptStyle {
  const s = Object.hasOwn(PROMPT_STYLES, name) ? PROMPT_STYLES[name] : undefined;
  if (!s) {
    throw new RangeError(
      `Unknown prompt style '${name}' (expected ${Object.keys(PROMPT_STYLES).join(" or ")})`,
    );
  }
  return s;
}

// Python's str-pattern `\s` (str.isspace), as a character class body.
const PY_SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029" +
  "\\u202f\\u205f\\u3000";
// direct: r'Option (?P<choice>\d).?\s*(?P<explanation>.*)'
const DIRECT = new RegExp(
  `Option (?<choice>\\p{Nd})[^\\n]?[${PY_SPACE}]*(?<explanation>[^\\n]*)`,
  "u",
);
// step_by_step5, second turn: r'(?i)(?: option)? (?P<choice>\d)'. Whether " option" matches
// cannot change the choice (the digit after it also matches on its own), so Python's extra case
// folds (ı, İ) need no transcription.
const SECOND_TURN = /(?: option)? (?<choice>\p{Nd})/iu;

/** What the parser read from a model's replies. */
export interface ParsedAnswer {
  /** The chosen option's digit as written ("1", "2", or any other decimal digit), or null. */
  choice: string | null;
  /** The explanation (direct: the rest of the answer's line; step by step: the first reply). */
  explanation: string | null;
}

/**
 * Reads the option chosen in `replies` (one reply per user turn) as the authors' code does;
 * `choice` is null when the pattern does not match (scored as "neither").
 *
 * @example
 * ```ts
 * import { parseAnswer } from "./parse.ts";
 * import { assertEquals } from "@std/assert";
 * assertEquals(parseAnswer("direct", ["Option 2. Because."]), { choice: "2", explanation: "Because." });
 * assertEquals(parseAnswer("direct", ["option 2"]).choice, null); // case-sensitive
 * ```
 */
export function parseAnswer(style: string, replies: readonly string[]): ParsedAnswer {
  const s = promptStyle(style);
  const turns = 1 + s.followUps.length;
  if (replies.length !== turns) {
    throw new RangeError(
      `Style '${style}' has ${turns} turn(s) but ${replies.length} repl${
        replies.length === 1 ? "y was" : "ies were"
      } given`,
    );
  }
  if (s.name === "direct") {
    const m = DIRECT.exec(replies[0]!);
    return m ? { choice: m.groups!.choice!, explanation: m.groups!.explanation! } : {
      choice: null,
      explanation: null,
    };
  }
  // first turn: r'(?i)(?P<explanation>[\s\S]*)' always matches the whole reply
  const m = SECOND_TURN.exec(replies[turns - 1]!);
  return { choice: m ? m.groups!.choice! : null, explanation: replies[0]! };
}

/**
 * The numeric value of a decimal digit character (any Unicode script), e.g. "٢" → 2. Decimal
 * digits come in contiguous runs of ten from zero to nine, so the value is the offset within the
 * run.
 */
export function digitValue(ch: string): number {
  const cp = ch.codePointAt(0);
  if (cp === undefined || [...ch].length !== 1 || !/^\p{Nd}$/u.test(ch)) {
    throw new RangeError(`Expected one decimal digit, got '${ch}'`);
  }
  let start = cp;
  while (start > 0 && /^\p{Nd}$/u.test(String.fromCodePoint(start - 1))) start--;
  return (cp - start) % 10;
}
