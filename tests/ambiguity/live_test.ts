// Live evaluation against a scripted local server: retries on 429/5xx/timeouts/malformed JSON,
// immediate failure on 4xx, unreachable endpoints, the two-turn conversation, answers appended as
// they arrive, and resume after an interrupted run.
import { assert, assertEquals, assertRejects } from "@std/assert";
import { ChatApiError, ChatClient } from "../../lib/ambiguity/client.ts";
import { readAnswers, runLive } from "../../lib/ambiguity/live.ts";
import { scoreItems } from "../../lib/ambiguity/metrics.ts";
import { itemRecord } from "../../lib/ambiguity/benchmark.ts";
import { FormatError } from "../../lib/core/errors.ts";
import { startServer } from "./_server.ts";
import { testItems } from "./_items.ts";

const fast = { backoffMs: 1, maxBackoffMs: 5, timeoutMs: 200 };
const user = [{ role: "user" as const, content: "hi" }];

Deno.test("client: 429, 500, a timeout, malformed JSON and a missing content are retried", async () => {
  const s = startServer();
  try {
    s.faults = ["429", "500", "timeout", "malformed", "no-content"];
    const c = new ChatClient({ baseUrl: s.baseUrl, model: "m", retries: 5, ...fast });
    const r = await c.complete(user);
    assertEquals(
      (r as { choices: { message: { content: string } }[] }).choices[0]!.message.content,
      "Option 1. It fits the premises.",
    );
    assertEquals(s.requests.length, 6);
    assertEquals(s.requests[0], {
      model: "m",
      messages: user,
      temperature: 0.7,
      max_tokens: 512,
    } as unknown);
  } finally {
    await s.close();
  }
});

Deno.test("client: gives up after its retries, at once on 400/401, with one sentence", async () => {
  const s = startServer();
  try {
    const c = new ChatClient({ baseUrl: s.baseUrl, model: "m", retries: 2, ...fast });
    s.faults = ["500", "500", "500"];
    const e = await assertRejects(() => c.complete(user), ChatApiError);
    assertEquals(e.message, `${s.baseUrl}/chat/completions: HTTP 500: internal (3 attempts)`);
    assertEquals([e.status, e.attempts], [500, 3]);
    s.faults = ["timeout", "timeout", "timeout"];
    await assertRejects(
      () => c.complete(user),
      ChatApiError,
      "no reply within 200 ms (3 attempts)",
    );
    const n = s.requests.length;
    s.faults = ["401"];
    await assertRejects(
      () => c.complete(user),
      ChatApiError,
      "HTTP 401: Incorrect API key provided (no API key was sent) (1 attempt)",
    );
    s.faults = ["400"];
    await assertRejects(() => c.complete(user), ChatApiError, "HTTP 400: bad request");
    assertEquals(s.requests.length, n + 2);
  } finally {
    await s.close();
  }
});

Deno.test("client: no redirect is followed, no reply is read past its cap; neither is retried", async () => {
  // a 302 to another port was fetched and stored as the answer; 64 MiB replies were read whole
  const s = startServer();
  try {
    const c = new ChatClient({
      baseUrl: s.baseUrl,
      model: "m",
      retries: 3,
      maxReplyBytes: 4096,
      ...fast,
    });
    s.faults = ["redirect"];
    await assertRejects(
      () => c.complete(user),
      ChatApiError,
      `HTTP 302: the server redirects to http://127.0.0.1:${s.port}/elsewhere; redirects are not followed, give the final URL (1 attempt)`,
    );
    s.faults = ["huge"];
    await assertRejects(() => c.complete(user), ChatApiError, "the reply passes 4096 bytes");
    assertEquals(s.requests.length, 2);
    assertEquals(typeof (await c.complete(user)).choices, "object"); // a normal reply still fits
  } finally {
    await s.close();
  }
});

Deno.test("client: an unreachable endpoint and a bad base URL fail clearly", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const c = new ChatClient({
    baseUrl: `http://127.0.0.1:${port}/v1`,
    model: "m",
    retries: 1,
    ...fast,
  });
  const e = await assertRejects(() => c.complete(user), ChatApiError, "cannot connect");
  assertEquals(e.status, 0);
  assert(e.message.includes("(2 attempts)"), e.message);
  let err: unknown;
  try {
    new ChatClient({ baseUrl: "localhost:8000", model: "m" });
  } catch (x) {
    err = x;
  }
  assert(err instanceof TypeError && err.message.includes("must start with http"), String(err));
});

async function temp(): Promise<string> {
  return `${await Deno.makeTempDir()}/answers.jsonl`;
}

Deno.test("runLive: step by step sends two turns; each answer is one appended JSON line", async () => {
  const s = startServer();
  const out = await temp();
  try {
    const items = testItems("step_by_step5", 3);
    const c = new ChatClient({ baseUrl: s.baseUrl, model: "m", ...fast });
    const seen: number[] = [];
    const sum = await runLive(items, c, { out, concurrency: 2, onItem: (n) => seen.push(n) });
    assertEquals(sum, { total: 6, resumed: 0, answered: 6, droppedBytes: 0 });
    assertEquals(seen, [1, 2, 3, 4, 5, 6]);
    assertEquals(s.requests.length, 12);
    const second = s.requests.find((r) => r.messages.length === 4)!;
    assertEquals(second.messages.map((m) => m.role), ["system", "user", "assistant", "user"]);
    assertEquals(second.messages[2]!.content, "Thinking about both options, (P1) holds.");
    assertEquals(second.messages[3]!.content, items[0]!.messages[1]);
    const lines = (await Deno.readTextFile(out)).trimEnd().split("\n");
    assertEquals(lines.length, 6);
    const { done } = await readAnswers(out);
    const answered = items.map((it) => done.get(it.id)!);
    for (const a of answered) {
      assertEquals(a.results, {
        choice: "1",
        explanation: "Thinking about both options, (P1) holds.",
      });
    }
    // every answer says option 1: right exactly where the label is option 1
    const scored = scoreItems(answered);
    assertEquals(
      scored.map((x) => x.predicted === x.item.labelName),
      items.map((it) => it.labelNr === 1),
    );
  } finally {
    await s.close();
  }
});

Deno.test("runLive: a failed run keeps its answers and a rerun asks only for the rest", async () => {
  const s = startServer();
  const out = await temp();
  try {
    const items = testItems("direct", 5);
    const c = new ChatClient({ baseUrl: s.baseUrl, model: "m", retries: 1, ...fast });
    s.healthyLeft = 4;
    await assertRejects(
      () => runLive(items, c, { out, concurrency: 3 }),
      ChatApiError,
      `HTTP 503: overloaded (2 attempts); 4 of 10 answers are kept in '${out}' and a rerun resumes from there`,
    );
    assertEquals((await readAnswers(out)).done.size, 4);
    s.healthyLeft = Infinity;
    const before = s.requests.length;
    const sum = await runLive(items, c, { out, concurrency: 3 });
    assertEquals(sum, { total: 10, resumed: 4, answered: 6, droppedBytes: 0 });
    assertEquals(s.requests.length - before, 6);
    const ids = (await Deno.readTextFile(out)).trimEnd().split("\n").map((l) => JSON.parse(l).id);
    assertEquals(ids.slice().sort(), items.map((i) => i.id).sort());
    // a third run has nothing to do
    assertEquals((await runLive(items, c, { out })).answered, 0);
    assertEquals(s.requests.length - before, 6);
  } finally {
    await s.close();
  }
});

Deno.test("runLive: an answers file without a final newline is resumed on a new line", async () => {
  // the next answer was appended onto the last line, and every later run failed to read the file
  const s = startServer();
  const out = await temp();
  try {
    const items = testItems("direct", 3);
    const c = new ChatClient({ baseUrl: s.baseUrl, model: "m", ...fast });
    await runLive(items.slice(0, 2), c, { out });
    await Deno.writeTextFile(out, (await Deno.readTextFile(out)).trimEnd());
    const sum = await runLive(items, c, { out });
    assertEquals([sum.resumed, sum.answered], [2, items.length - 2]);
    assertEquals((await readAnswers(out)).done.size, items.length);
  } finally {
    await s.close();
  }
});

Deno.test("runLive: an endpoint that never answers leaves no answers file behind", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const out = await temp();
  const c = new ChatClient({ baseUrl: `http://127.0.0.1:${port}/v1`, model: "m", ...fast });
  await assertRejects(
    () => runLive(testItems("direct", 2), c, { out, concurrency: 2 }),
    ChatApiError,
    `cannot connect`,
  );
  await assertRejects(() => Deno.stat(out), Deno.errors.NotFound);
});

Deno.test("readAnswers: a cut-off last line is dropped, a bad line elsewhere names file and line", async () => {
  const out = await temp();
  const [a, b] = testItems("direct", 1).map((it) =>
    JSON.stringify(itemRecord({
      ...it,
      responses: [{ choices: [{ message: { content: "Option 1" } }] }],
      results: { choice: "1", explanation: "" },
    }))
  );
  await Deno.writeTextFile(out, `${a}\n${b!.slice(0, 40)}`);
  const r = await readAnswers(out);
  assertEquals([r.done.size, r.droppedBytes], [1, 40]);
  assertEquals(await Deno.readTextFile(out), `${a}\n`);
  await Deno.writeTextFile(out, `${a}\n{"id": oops}\n${b}\n`);
  await assertRejects(() => readAnswers(out), FormatError, `'${out}' line 2: `);
  await Deno.writeTextFile(out, `${a}\n{"id": "x", "label_nr": 3}\n`);
  await assertRejects(
    () => readAnswers(out),
    FormatError,
    `'${out}' line 2: label_nr 3 is not 1 or 2`,
  );
});

Deno.test("runLive refuses answers that were asked with other messages", async () => {
  const out = await temp();
  const items = testItems("direct", 1);
  const rec = itemRecord({
    ...items[0]!,
    messages: ["something else"],
    responses: [{ choices: [{ message: { content: "Option 1" } }] }],
  });
  await Deno.writeTextFile(out, JSON.stringify(rec) + "\n");
  const c = new ChatClient({ baseUrl: "http://127.0.0.1:9/v1", model: "m" });
  await assertRejects(
    () => runLive(items, c, { out }),
    FormatError,
    "was asked with other messages",
  );
});
