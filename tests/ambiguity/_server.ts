// A scripted OpenAI-compatible chat server on 127.0.0.1 for the live-evaluation tests: it
// answers "Option 1" to every first turn of a direct prompt and to every second turn, and can be
// told to fail the next requests in chosen ways.
export type Fault =
  | "429"
  | "500"
  | "timeout"
  | "malformed"
  | "no-content"
  | "400"
  | "401"
  | "redirect" // 302 to /elsewhere on the same server, which answers normally
  | "huge"; // a valid answer padded to 64 KiB

export interface ScriptedServer {
  baseUrl: string;
  port: number;
  /** Requests received (all, including failed ones). */
  requests: { messages: { role: string; content: string }[] }[];
  /** Faults to serve, one per request, before answering normally. */
  faults: Fault[];
  /** Answer normally only this many more times, then fail every request with 500. */
  healthyLeft: number;
  /** Milliseconds to wait before each normal answer. */
  delayMs: number;
  close(): Promise<void>;
}

export function startServer(): ScriptedServer {
  const state = {
    requests: [] as ScriptedServer["requests"],
    faults: [] as Fault[],
    healthyLeft: Infinity,
    delayMs: 0,
  };
  const ac = new AbortController();
  // the port, for the redirect fault (known once the server listens)
  const listening = (): number => server.addr.port;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    async (req): Promise<Response> => {
      const body = await req.json();
      state.requests.push(body);
      const fault = state.faults.shift();
      const json = (status: number, v: unknown, headers: Record<string, string> = {}) =>
        new Response(JSON.stringify(v), {
          status,
          headers: { "content-type": "application/json", ...headers },
        });
      switch (fault) {
        case "429":
          return json(429, { error: { message: "Rate limit reached" } }, { "retry-after": "0" });
        case "500":
          return json(500, { error: { message: "internal" } });
        case "400":
          return json(400, { error: { message: "bad request: unknown model" } });
        case "401":
          return json(401, { error: { message: "Incorrect API key provided" } });
        case "malformed":
          return new Response('{"choices": [', { status: 200 });
        case "no-content":
          return json(200, { choices: [{ message: { role: "assistant" } }] });
        case "redirect":
          return new Response(null, {
            status: 302,
            headers: { location: `http://127.0.0.1:${listening()}/elsewhere` },
          });
        case "huge":
          return json(200, {
            choices: [{
              message: { role: "assistant", content: "Option 1. " + "x".repeat(65536) },
            }],
          });
        case "timeout":
          await new Promise((r) => setTimeout(r, 400));
          return json(500, { error: { message: "too late" } });
      }
      if (state.healthyLeft <= 0) return json(503, { error: { message: "overloaded" } });
      state.healthyLeft--;
      if (state.delayMs > 0) await new Promise((r) => setTimeout(r, state.delayMs));
      const users = body.messages.filter((m: { role: string }) => m.role === "user");
      const content = users.length === 1 && !users[0].content.includes("step by step")
        ? "Option 1. It fits the premises."
        : users.length === 1
        ? "Thinking about both options, (P1) holds."
        : 'My final answer is "Option 1".';
      return json(200, {
        id: `cmpl-${state.requests.length}`,
        object: "chat.completion",
        model: body.model,
        choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
        usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
      });
    },
  );
  const port = server.addr.port;
  const s: ScriptedServer = {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    port,
    get requests() {
      return state.requests;
    },
    get faults() {
      return state.faults;
    },
    set faults(f) {
      state.faults = f;
    },
    get healthyLeft() {
      return state.healthyLeft;
    },
    set healthyLeft(n) {
      state.healthyLeft = n;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(n) {
      state.delayMs = n;
    },
    async close() {
      ac.abort();
      await server.finished;
    },
  };
  return s;
}
