/**
 * A communicator that counts the time spent inside its blocking calls: what a script needs to
 * split a step into computation and communication (QSDP's projections, bench/qsdp_bench.ts).
 *
 * @module
 */
import type { Communicator } from "./communicator.ts";

/**
 * `comm` wrapped so that every blocking call (`…Sync`) adds its duration to a counter; the
 * Promise forms pass through uncounted (their time overlaps other work).
 *
 * @example
 * ```ts
 * import { createCommunicator } from "./communicator.ts";
 * import { timedCommunicator } from "./timed.ts";
 * const t = timedCommunicator(createCommunicator("single"));
 * t.comm.barrierSync();
 * if (!(t.seconds() >= 0)) throw new Error();
 * ```
 */
export function timedCommunicator(
  comm: Communicator,
): { comm: Communicator; seconds: () => number } {
  let ms = 0;
  const proxy = new Proxy(comm, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function") return v;
      if (typeof prop === "string" && prop.endsWith("Sync")) {
        return (...a: unknown[]) => {
          const t = performance.now();
          try {
            return v.apply(target, a);
          } finally {
            ms += performance.now() - t;
          }
        };
      }
      return v.bind(target);
    },
  });
  return { comm: proxy, seconds: () => ms / 1000 };
}
