/**
 * A small client for OpenAI-compatible chat-completions endpoints (OpenAI, vLLM, llama.cpp's
 * server, Ollama, …): one POST per call, a timeout per attempt, and retries with jittered
 * exponential backoff on 429, 5xx, timeouts, dropped connections and malformed replies.
 *
 * @module
 */

/** One chat message. */
export interface ChatMessage {
  /** Who speaks. */
  role: "system" | "user" | "assistant";
  /** The text. */
  content: string;
}

/** Settings of a {@linkcode ChatClient}. */
export interface ChatClientOptions {
  /** Base URL up to and including the API version, e.g. "http://127.0.0.1:8000/v1". */
  baseUrl: string;
  /** Model name sent in each request. */
  model: string;
  /** Bearer token; omitted for local servers that need none. */
  apiKey?: string;
  /** Sampling temperature (default 0.7). */
  temperature?: number;
  /** Most tokens per reply (default 512). */
  maxTokens?: number;
  /** Milliseconds before one attempt is abandoned (default 60,000). */
  timeoutMs?: number;
  /** Retries after the first attempt (default 5). */
  retries?: number;
  /** First backoff in ms; doubles per retry, with jitter (default 1,000). */
  backoffMs?: number;
  /** Longest backoff in ms, also the cap on a server's Retry-After (default 60,000). */
  maxBackoffMs?: number;
  /** Largest reply body read, in bytes (default 16 MiB); a longer one fails the call. */
  maxReplyBytes?: number;
}

/** A failed call: the endpoint's answer or the network error, after all attempts. */
export class ChatApiError extends Error {
  /** HTTP status, or 0 when no response came (timeout, refused connection). */
  readonly status: number;
  /** Attempts made. */
  readonly attempts: number;
  /** Constructs the error. */
  constructor(message: string, status: number, attempts: number) {
    super(message);
    this.name = "ChatApiError";
    this.status = status;
    this.attempts = attempts;
  }
}

const RETRYABLE = (status: number) => status === 429 || status === 408 || status >= 500;

class Attempt extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/**
 * Sends chat-completion requests.
 *
 * @example
 * ```ts
 * import { ChatClient } from "./client.ts";
 * const client = new ChatClient({ baseUrl: "http://127.0.0.1:8000/v1", model: "m" });
 * if (client.url !== "http://127.0.0.1:8000/v1/chat/completions") throw new Error("wrong url");
 * ```
 */
export class ChatClient {
  /** The endpoint URL. */
  readonly url: string;
  readonly #o: Required<Omit<ChatClientOptions, "apiKey">> & { apiKey?: string };

  /** Checks the options and builds the endpoint URL. */
  constructor(options: ChatClientOptions) {
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch {
      throw new TypeError(
        `Base URL '${options.baseUrl}' is not a URL (expected e.g. http://127.0.0.1:8000/v1)`,
      );
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new TypeError(`Base URL '${options.baseUrl}' must start with http:// or https://`);
    }
    this.url = `${options.baseUrl.replace(/\/+$/, "")}/chat/completions`;
    this.#o = {
      temperature: 0.7,
      maxTokens: 512,
      timeoutMs: 60_000,
      retries: 5,
      backoffMs: 1_000,
      maxBackoffMs: 60_000,
      maxReplyBytes: 16 * 2 ** 20,
      ...options,
    };
  }

  /** The host (and port) requests go to, as `--allow-net` names it. */
  get host(): string {
    return new URL(this.url).host;
  }

  /**
   * Sends `messages` and returns the completion object (its `choices[0].message.content` is
   * checked to be a string). Throws a {@linkcode ChatApiError} once retries are spent, or at
   * once on a 4xx other than 408/429.
   */
  async complete(messages: ChatMessage[]): Promise<Record<string, unknown>> {
    const o = this.#o;
    const body = JSON.stringify({
      model: o.model,
      messages,
      temperature: o.temperature,
      max_tokens: o.maxTokens,
    });
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (o.apiKey) headers.authorization = `Bearer ${o.apiKey}`;
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#attempt(body, headers);
      } catch (e) {
        const a = e as Attempt;
        if (!(a instanceof Attempt)) throw e;
        const attempts = attempt + 1;
        if (!a.retryable || attempt >= o.retries) {
          const tries = attempts === 1 ? "1 attempt" : `${attempts} attempts`;
          throw new ChatApiError(`${this.url}: ${a.message} (${tries})`, a.status, attempts);
        }
        const exp = Math.min(o.maxBackoffMs, o.backoffMs * 2 ** attempt);
        const wait = a.retryAfterMs !== undefined
          ? Math.min(o.maxBackoffMs, Math.max(a.retryAfterMs, exp / 2))
          : exp / 2 + Math.random() * exp / 2;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  async #attempt(body: string, headers: Record<string, string>): Promise<Record<string, unknown>> {
    const o = this.#o;
    let res: Response;
    let text: string;
    const signal = AbortSignal.timeout(o.timeoutMs);
    try {
      // redirects are not followed: with a host-wide --allow-net a 302 to another port was
      // fetched and its body stored as the answer
      res = await fetch(this.url, { method: "POST", headers, body, signal, redirect: "manual" });
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel();
        const to = res.headers.get("location");
        throw new Attempt(
          `HTTP ${res.status}: the server redirects${
            to ? ` to ${to}` : ""
          }; redirects are not followed, give the final URL`,
          res.status,
          false,
        );
      }
      text = await readCapped(res, o.maxReplyBytes);
    } catch (e) {
      if (e instanceof Attempt) throw e;
      const err = e as Error;
      if (err.name === "TimeoutError" || signal.aborted) {
        throw new Attempt(`no reply within ${o.timeoutMs} ms`, 0, true);
      }
      if (err instanceof Deno.errors.NotCapable) throw err;
      throw new Attempt(`cannot connect: ${err.message}`, 0, true);
    }
    if (!res.ok) {
      const retryAfter = Number(res.headers.get("retry-after"));
      const detail = serverMessage(text);
      const hint = res.status === 401 && !o.apiKey ? " (no API key was sent)" : "";
      throw new Attempt(
        `HTTP ${res.status}${detail ? `: ${detail}` : ""}${hint}`,
        res.status,
        RETRYABLE(res.status),
        Number.isFinite(retryAfter) && res.headers.has("retry-after")
          ? retryAfter * 1000
          : undefined,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Attempt(
        `malformed JSON in the reply (${(e as Error).message}): ${clip(text)}`,
        res.status,
        true,
      );
    }
    const content = (json as { choices?: { message?: { content?: unknown } }[] } | null)?.choices
      ?.[0]?.message?.content;
    if (typeof content !== "string") {
      throw new Attempt(
        `the reply has no choices[0].message.content string: ${clip(text)}`,
        res.status,
        true,
      );
    }
    return json as Record<string, unknown>;
  }
}

/** The body as text, or an Attempt (not retried) once it passes `cap` bytes. */
async function readCapped(res: Response, cap: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader(), parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > cap) {
      await reader.cancel();
      throw new Attempt(`the reply passes ${cap} bytes (maxReplyBytes)`, res.status, false);
    }
    parts.push(value);
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) all.set(p, at), at += p.length;
  return new TextDecoder().decode(all);
}

function clip(s: string): string {
  const one = s.replace(/\s+/g, " ").trim();
  return one.length > 120 ? `'${one.slice(0, 117)}...'` : `'${one}'`;
}

function serverMessage(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown } | string };
    const m = typeof j.error === "string" ? j.error : j.error?.message;
    if (typeof m === "string") return m;
  } catch { /* not JSON */ }
  return text.trim() === "" ? "" : clip(text);
}
