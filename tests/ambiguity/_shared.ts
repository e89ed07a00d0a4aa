// Where the released benchmark lives (../shared, never copied: it states no licence).
export const BENCHMARK =
  new URL("../../../shared/data/ambiguity/exploiting_ambiguity/", import.meta.url).pathname;

/** Whether the released benchmark is present; prints why the tests that need it are skipped. */
export const haveBenchmark = (() => {
  try {
    Deno.statSync(BENCHMARK);
    return true;
  } catch {
    console.log(`skipped ambiguity real-data tests: ${BENCHMARK} is absent`);
    return false;
  }
})();
