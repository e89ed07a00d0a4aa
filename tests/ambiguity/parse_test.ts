// Answer parsing against the authors' Python patterns: hand-written cases whose Python results
// were worked out from `re` semantics (Unicode \d and \s, "." excluding only "\n").
import { assertEquals, assertThrows } from "@std/assert";
import { digitValue, parseAnswer, promptStyle } from "../../lib/ambiguity/parse.ts";

Deno.test("direct: 'Option d', one optional character, whitespace, then the rest of that line", () => {
  const cases: [string, string | null, string | null][] = [
    ["Option 1. \n\nThe sentence refers to X.\nMore.", "1", "The sentence refers to X."],
    ["I pick Option 2: because", "2", "because"],
    ["Option 2", "2", ""],
    ["option 1", null, null], // case-sensitive
    ["OPTION 1", null, null],
    ["Option one", null, null],
    ["The answer is Option\u00a01", null, null], // a no-break space is not the literal space
    ["Option \u0663\r\x85\x1cfoo\rbar\u2028x\nnext", "\u0663", "foo\rbar\u2028x"],
    ["Option 1\ufeffx", "1", "x"], // "." takes U+FEFF (Python's \s does not match it)
    ["Option 1.\u2028\u2029 y", "1", "y"], // U+2028/9 are Python whitespace
    ["", null, null],
  ];
  for (const [text, choice, explanation] of cases) {
    assertEquals(parseAnswer("direct", [text]), { choice, explanation }, JSON.stringify(text));
  }
});

Deno.test("step by step: the first ' d' or ' option d' (any case) in the second reply", () => {
  const first = "Long reasoning.\n(P3) says 1962.";
  const cases: [string, string | null][] = [
    ['Based on the analysis, the correct answer is "Option 1".', "1"],
    ["OPTION 2", "2"],
    ["My final answer: option 2, not option 1.", "2"],
    ["Option 2", "2"], // " 2" matches even without the leading space before "Option"
    ["Option2", null],
    ["The answer is (2).", null],
    ["In 1962 it was option 1", "1"], // the year's digit comes first: " 1" of " 1962"
    [" \u0662", "\u0662"],
    ["", null],
  ];
  for (const [second, choice] of cases) {
    assertEquals(
      parseAnswer("step_by_step5", [first, second]),
      { choice, explanation: first },
      second,
    );
  }
});

Deno.test("Option 22: '.?' takes the second digit", () => {
  assertEquals(parseAnswer("direct", ["Option 22 is odd"]), { choice: "2", explanation: "is odd" });
});

Deno.test("digitValue reads decimal digits of every script; bad input fails", () => {
  assertEquals(["0", "7", "\u0663", "\u0966", "\u{1D7D8}", "\u{1D7E1}"].map(digitValue), [
    0,
    7,
    3,
    0,
    0,
    9,
  ]);
  assertThrows(() => digitValue("x"), RangeError, "Expected one decimal digit, got 'x'");
  assertThrows(() => digitValue("12"), RangeError);
});

Deno.test("unknown styles and wrong turn counts fail with one sentence", () => {
  assertThrows(
    () => promptStyle("step_by_step9"),
    RangeError,
    "Unknown prompt style 'step_by_step9' (expected direct or step_by_step5)",
  );
  assertThrows(
    () => parseAnswer("step_by_step5", ["only one"]),
    RangeError,
    "Style 'step_by_step5' has 2 turn(s) but 1 reply was given",
  );
  assertThrows(() => promptStyle("toString"), RangeError);
});
