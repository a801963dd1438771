/**
 * `TroveClient`: typed calls for Trove's HTTP routes, with retries where a retry is safe,
 * and `claim`, which makes one idempotency key per logical claim and reuses it on every retry,
 * so a claim whose answer was lost is replayed (200) rather than opening a second chest.
 */
import { TroveError } from "./errors.js";
import { backoffDelay, parseRetryAfter, resolveRetry, sleep, type ResolvedRetry, type RetryOptions } from "./retry.js";
import type {
  ChestPage,
  ChestState,
  ClaimAnswer,
  ClientSeed,
  CleanupResult,
  Claim,
  HistoryPage,
  LootTableSpec,
  Readiness,
  ReceiptKeyList,
  ResponseOf,
  RevealResult,
  SpawnResult,
  TableVersion,
  TableView,
  ZoneView,
  BoardPage,
  PlayerStanding,
  Health,
  Routes,
  ZoneList,
  TableList,
  ShardsView,
  VerifyReport,
} from "./types.js";
import { Watch, type WatchHandlers, type WatchOptions, type WebSocketLike } from "./watch.js";
import { parseTranscript, type Transcript } from "./transcript.js";

/** The parts of `fetch` the client uses (the platform's, or a wrapper of it). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** A constructor of WebSockets: the browser's global, or `ws` in Node 20. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface TroveClientOptions {
  /** Where Trove answers, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** A bearer token, or a function that returns the current one (called for each request). */
  token?: string | (() => string | Promise<string>);
  /** Default: the global `fetch`. */
  fetch?: FetchLike;
  /** Default: the global `WebSocket` (browsers, Node 22+); pass `ws`'s in Node 20. */
  WebSocket?: WebSocketConstructor;
  /** Retries of claims and of reads (see README "Retries"). */
  retry?: RetryOptions;
  /** Called before each retry (for logging and tests). */
  onRetry?: (info: RetryInfo) => void;
  /** Makes idempotency keys (default `crypto.randomUUID()`). */
  newKey?: () => string;
}

export interface RetryInfo {
  method: string;
  path: string;
  /** The attempt that failed (1 = the first). */
  attempt: number;
  delayMs: number;
  error: TroveError;
  idempotencyKey?: string;
}

/** How a request may be retried. */
type RetryClass =
  /** Reads, and writes that mean the same whatever number of times they run (PUTs, keyed claims). */
  | "safe"
  /** Non-idempotent writes: only answers that say the request was refused before it ran. */
  | "refused"
  | "never";

export interface ClaimOptions {
  /** Open this chest rather than any unopened one. */
  chest?: number;
  /** The idempotency key; by default a fresh random one per call. Reuse one to retry a claim
   *  made by an earlier call (e.g. after a page reload). */
  key?: string;
  /** Admin tokens: claim on behalf of this player. */
  player?: string;
  signal?: AbortSignal;
}

export interface ClaimResult {
  claim: ClaimAnswer;
  /** 201: this call opened the chest; 200: an earlier attempt with the same key had (replay). */
  status: 200 | 201;
  outcome: "opened" | "replayed";
  replayed: boolean;
  /** The key every attempt of this claim carried. */
  idempotencyKey: string;
  /** Attempts made (1: no retry). */
  attempts: number;
  request_id: string | null;
}

interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined | null>;
  body?: unknown;
  headers?: Record<string, string>;
  retry: RetryClass;
  signal?: AbortSignal;
  /** Statuses that count as success (default: 2xx). */
  ok?: (status: number) => boolean;
  text?: boolean;
}

interface Answer<T> {
  status: number;
  body: T;
  headers: Headers;
  attempts: number;
}

/** Statuses after which a safe request is sent again. 408: Trove gave up on the request,
 *  its outcome is unknown; 429/503: refused for now; 502/504: a proxy lost the answer. */
const RETRYABLE_STATUS = new Set([408, 429, 502, 503, 504]);
/** 503 codes that mean "refused at the door, nothing ran". */
const REFUSED_503 = new Set(["overloaded", "rate_limiter_unavailable"]);

export class TroveClient {
  readonly baseUrl: string;
  private readonly token: TroveClientOptions["token"];
  private readonly fetchImpl: FetchLike;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly retryOptions: ResolvedRetry;
  private readonly onRetry: TroveClientOptions["onRetry"];
  private readonly newKey: () => string;

  constructor(options: TroveClientOptions) {
    if (!options || typeof options.baseUrl !== "string") throw new TypeError("TroveClient needs { baseUrl }");
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.token = options.token;
    const f = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
    if (!f) throw new TypeError("no fetch: pass { fetch } to TroveClient");
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.WebSocketImpl =
      options.WebSocket ?? ((globalThis as { WebSocket?: WebSocketConstructor }).WebSocket as WebSocketConstructor | undefined);
    this.retryOptions = resolveRetry(options.retry);
    this.onRetry = options.onRetry;
    this.newKey = options.newKey ?? randomKey;
  }

  // ---- claims ---------------------------------------------------------------------------

  /**
   * Opens a chest in `zone` (any unopened one, or `chest`). One idempotency key is made for
   * this call and sent with every attempt, so retries after a lost answer, a timeout, a 408,
   * 429 or 503 never open a second chest: the server replays the first claim (200). Other
   * 4xx (409 `zone_exhausted`, 404, 422 ...) are thrown at once as `TroveError`.
   */
  async claim(zone: string, options: ClaimOptions = {}): Promise<ClaimResult> {
    const key = options.key ?? this.newKey();
    const path =
      options.chest === undefined
        ? `/v1/zones/${enc(zone)}/claims`
        : `/v1/zones/${enc(zone)}/chests/${enc(String(options.chest))}/claim`;
    const answer = await this.request<ClaimAnswer>("POST", path, {
      headers: { "idempotency-key": key },
      body: options.player === undefined ? undefined : { player: options.player },
      retry: "safe",
      signal: options.signal,
    }, key);
    const replayed = answer.status === 200;
    return {
      claim: answer.body,
      status: replayed ? 200 : 201,
      outcome: replayed ? "replayed" : "opened",
      replayed,
      idempotencyKey: key,
      attempts: answer.attempts,
      request_id: answer.headers.get("x-request-id"),
    };
  }

  /** A player's claims over every shard, newest first, one page (limit 1-500). */
  async history(player: string, options: { limit?: number; before?: string; signal?: AbortSignal } = {}): Promise<HistoryPage> {
    return this.get<HistoryPage>(`/v1/players/${enc(player)}/claims`, { limit: options.limit, before: options.before }, options.signal);
  }

  /** Every claim of a player, newest first, page after page. */
  async *historyAll(player: string, options: { pageSize?: number; signal?: AbortSignal } = {}): AsyncGenerator<Claim> {
    let before: string | undefined;
    for (;;) {
      const page = await this.history(player, { limit: options.pageSize ?? 500, before, signal: options.signal });
      yield* page.claims;
      if (!page.next) return;
      before = page.next;
    }
  }

  // ---- zones ----------------------------------------------------------------------------

  /** A zone's totals, current epoch and commitment, and every epoch (with seeds once revealed). */
  async zone(zone: string, signal?: AbortSignal): Promise<ZoneView> {
    return this.get<ZoneView>(`/v1/zones/${enc(zone)}`, undefined, signal);
  }

  /** One keyset page of a zone's chests (limit 1-1000; `after`: the previous page's `next`). */
  async chests(zone: string, options: { state?: ChestState; limit?: number; after?: number; signal?: AbortSignal } = {}): Promise<ChestPage> {
    return this.get<ChestPage>(
      `/v1/zones/${enc(zone)}/chests`,
      { state: options.state, limit: options.limit, after: options.after },
      options.signal,
    );
  }

  /** Every chest of a zone (optionally in one state), in id order, page after page. */
  async *chestsAll(zone: string, options: { state?: ChestState; pageSize?: number; signal?: AbortSignal } = {}): AsyncGenerator<ChestPage["chests"][number]> {
    let after: number | undefined;
    for (;;) {
      const page = await this.chests(zone, { state: options.state, limit: options.pageSize ?? 1000, after, signal: options.signal });
      yield* page.chests;
      if (page.next == null) return;
      after = page.next;
    }
  }

  /** Admin: spawns `count` chests (1-1,000,000) of a loot table. Not retried unless refused at the door. */
  async spawn(zone: string, body: { count: number; loot_table: string }, signal?: AbortSignal): Promise<SpawnResult> {
    const a = await this.request<SpawnResult>("POST", `/v1/zones/${enc(zone)}/chests`, { body, retry: "refused", signal });
    return a.body;
  }

  /** Admin: reveals the zone's current seed and starts a new epoch. Not retried unless refused at the door. */
  async reveal(zone: string, signal?: AbortSignal): Promise<RevealResult> {
    const a = await this.request<RevealResult>("POST", `/v1/zones/${enc(zone)}/reveal`, { retry: "refused", signal });
    return a.body;
  }

  /** The client seed of a player in a zone and their next nonce. */
  async clientSeed(zone: string, player: string, signal?: AbortSignal): Promise<ClientSeed> {
    return this.get<ClientSeed>(`/v1/zones/${enc(zone)}/players/${enc(player)}/client-seed`, undefined, signal);
  }

  /** Sets the client seed that enters the player's later draws in the zone (0-64 printable ASCII, no spaces). */
  async setClientSeed(zone: string, player: string, clientSeed: string, signal?: AbortSignal): Promise<ClientSeed> {
    const a = await this.request<ClientSeed>("PUT", `/v1/zones/${enc(zone)}/players/${enc(player)}/client-seed`, {
      body: { client_seed: clientSeed },
      retry: "safe",
      signal,
    });
    return a.body;
  }

  /** A revealed epoch's transcript as Trove sends it (NDJSON text). */
  async transcriptText(zone: string, epoch: number, signal?: AbortSignal): Promise<string> {
    const a = await this.request<string>("GET", `/v1/zones/${enc(zone)}/epochs/${enc(String(epoch))}/transcript`, {
      retry: "safe",
      signal,
      text: true,
    });
    return a.body;
  }

  /** A revealed epoch's transcript, parsed (header, claim lines, trailer; `complete` false when cut off). */
  async transcript(zone: string, epoch: number, signal?: AbortSignal): Promise<Transcript> {
    return parseTranscript(await this.transcriptText(zone, epoch, signal));
  }

  /** Admin: deletes synthetic (probe) zones older than `olderThanSecs` (default 3600). */
  async deleteSyntheticZones(olderThanSecs?: number, signal?: AbortSignal): Promise<CleanupResult> {
    const a = await this.request<CleanupResult>("DELETE", `/v1/synthetic-zones`, {
      query: { older_than_secs: olderThanSecs },
      retry: "safe",
      signal,
    });
    return a.body;
  }

  /** Admin: one page of every shard's zones in name order, with their totals (limit 1-1000,
   *  default 100; `after`: the previous page's `next`; `synthetic`: only probe zones, or only real ones). */
  async listZones(options: { after?: string; limit?: number; synthetic?: boolean; signal?: AbortSignal } = {}): Promise<ZoneList> {
    return this.get<ZoneList>(`/v1/zones`, { after: options.after, limit: options.limit, synthetic: options.synthetic }, options.signal);
  }

  /** Admin: every zone in name order, page after page. */
  async *listZonesAll(options: { synthetic?: boolean; pageSize?: number; signal?: AbortSignal } = {}): AsyncGenerator<ZoneList["zones"][number]> {
    let after: string | undefined;
    for (;;) {
      const page = await this.listZones({ after, limit: options.pageSize ?? 1000, synthetic: options.synthetic, signal: options.signal });
      yield* page.zones;
      if (!page.next) return;
      after = page.next;
    }
  }

  /**
   * Admin: `trove verify` over HTTP: replays every claim of the zone on the server and reports
   * mismatches, nonce problems and bad commitments (`clean`: none). Never retried (one runs at a
   * time per instance: a second is 429 `verify_busy`, thrown at once).
   */
  async verifyZoneOnServer(zone: string, signal?: AbortSignal): Promise<VerifyReport> {
    const a = await this.request<VerifyReport>("POST", `/v1/zones/${enc(zone)}/verify`, { retry: "never", signal });
    return a.body;
  }

  // ---- loot tables ----------------------------------------------------------------------

  /** A loot table's latest version, or the version asked for. */
  async lootTable(name: string, options: { version?: number; signal?: AbortSignal } = {}): Promise<TableView> {
    return this.get<TableView>(`/v1/loot-tables/${enc(name)}`, { version: options.version }, options.signal);
  }

  /** Admin: stores a loot table; changed content makes a new immutable version (same content: the same version). */
  async putLootTable(name: string, spec: LootTableSpec, signal?: AbortSignal): Promise<TableVersion> {
    const a = await this.request<TableVersion>("PUT", `/v1/loot-tables/${enc(name)}`, { body: spec, retry: "safe", signal });
    return a.body;
  }

  /** Admin: one page of loot tables in name order, each with its newest version. */
  async lootTables(options: { after?: string; limit?: number; signal?: AbortSignal } = {}): Promise<TableList> {
    return this.get<TableList>(`/v1/loot-tables`, { after: options.after, limit: options.limit }, options.signal);
  }

  // ---- operations -------------------------------------------------------------------------

  /** Admin: every shard as `trove shards` reports it (reachability, migration, counts, hosts) and the zone moves in progress. */
  async shards(signal?: AbortSignal): Promise<ShardsView> {
    return this.get<ShardsView>(`/v1/shards`, undefined, signal);
  }

  // ---- leaderboards ---------------------------------------------------------------------

  /** `chests` or `loot_value`, global or of one zone (503 `leaderboard_unavailable` without Redis). */
  async leaderboard(board: string, options: { zone?: string; limit?: number; signal?: AbortSignal } = {}): Promise<BoardPage> {
    return this.get<BoardPage>(`/v1/leaderboards/${enc(board)}`, { zone: options.zone, limit: options.limit }, options.signal);
  }

  /** A player's rank and score on a board, with their neighbours. */
  async leaderboardStanding(board: string, player: string, options: { zone?: string; signal?: AbortSignal } = {}): Promise<PlayerStanding> {
    return this.get<PlayerStanding>(`/v1/leaderboards/${enc(board)}/players/${enc(player)}`, { zone: options.zone }, options.signal);
  }

  // ---- public -----------------------------------------------------------------------------

  /** The public keys receipts and transcripts are signed with. */
  async receiptKeys(signal?: AbortSignal): Promise<ReceiptKeyList> {
    return this.get<ReceiptKeyList>(`/.well-known/trove-keys.json`, undefined, signal);
  }

  async health(signal?: AbortSignal): Promise<Health> {
    return this.get<Health>(`/healthz`, undefined, signal);
  }

  /** `/readyz`: 200 and 503 both answer with the same body (which shard is down). */
  async readiness(signal?: AbortSignal): Promise<Readiness & { ready: boolean }> {
    const a = await this.request<Readiness>("GET", `/readyz`, { retry: "never", signal, ok: (s) => s === 200 || s === 503 });
    return { ...a.body, ready: a.status === 200 };
  }

  /** The OpenAPI description Trove serves. */
  async openapi(signal?: AbortSignal): Promise<ResponseOf<"GET /openapi.json", "200">> {
    return this.get(`/openapi.json`, undefined, signal);
  }

  // ---- realtime ---------------------------------------------------------------------------

  /** Watches zones over one WebSocket (see `Watch`). */
  watch(zones: string[], handlers: WatchHandlers = {}, options: WatchOptions = {}): Watch {
    const WS = this.WebSocketImpl;
    if (!WS) {
      throw new TypeError(
        "no WebSocket: this platform has no global WebSocket (Node 20); pass one, e.g. new TroveClient({ ..., WebSocket: (await import('ws')).WebSocket })",
      );
    }
    return new Watch({
      zones,
      handlers,
      options,
      connect: async () => new WS(await this.webSocketUrl()),
    });
  }

  /** `/v1/ws` on the same host, with the token as `?token=` (browsers cannot set headers on WebSockets). */
  async webSocketUrl(): Promise<string> {
    const url = new URL(`${this.baseUrl}/v1/ws`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const token = await this.currentToken();
    if (token) url.searchParams.set("token", token);
    return url.toString();
  }

  // ---- plumbing ---------------------------------------------------------------------------

  private async currentToken(): Promise<string | undefined> {
    const t = this.token;
    return typeof t === "function" ? await t() : t;
  }

  private async get<T>(path: string, query?: RequestOptions["query"], signal?: AbortSignal): Promise<T> {
    const a = await this.request<T>("GET", path, { query, retry: "safe", signal });
    return a.body;
  }

  /** One logical request: attempts until success, a final answer, or the retry budget ends. */
  private async request<T>(method: string, path: string, o: RequestOptions, idempotencyKey?: string): Promise<Answer<T>> {
    const r = this.retryOptions;
    const started = Date.now();
    let url = this.baseUrl + path;
    if (o.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(o.query)) if (v !== undefined && v !== null) q.set(k, String(v));
      const s = q.toString();
      if (s) url += `?${s}`;
    }
    for (let attempt = 1; ; attempt++) {
      let error: TroveError;
      try {
        const answer = await this.attempt<T>(method, url, o);
        return { ...answer, attempts: attempt };
      } catch (e) {
        if (!(e instanceof TroveError)) throw e;
        error = e;
      }
      const retry = attempt < r.attempts && this.retryable(o.retry, error);
      const delay = backoffDelay(attempt, r, error.retryAfter);
      if (!retry || Date.now() - started + delay > r.totalTimeoutMs) throw error.withAttempts(attempt);
      this.onRetry?.({ method, path, attempt, delayMs: delay, error, idempotencyKey });
      try {
        await sleep(delay, o.signal);
      } catch (reason) {
        throw aborted(reason, attempt);
      }
    }
  }

  private retryable(kind: RetryClass, e: TroveError): boolean {
    if (e.error === "aborted") return false;
    switch (kind) {
      case "never":
        return false;
      case "safe":
        return e.status === 0 || RETRYABLE_STATUS.has(e.status);
      case "refused":
        return e.status === 429 || (e.status === 503 && REFUSED_503.has(e.error));
    }
  }

  /** One HTTP exchange; every failure becomes a `TroveError`. */
  private async attempt<T>(method: string, url: string, o: RequestOptions): Promise<Omit<Answer<T>, "attempts">> {
    const headers: Record<string, string> = { accept: o.text ? "application/x-ndjson, text/plain, */*" : "application/json", ...(o.headers ?? {}) };
    const token = await this.currentToken();
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (o.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(o.body);
    }
    const { signal, cancel, timedOut } = attemptSignal(this.retryOptions.timeoutMs, o.signal);
    let res: Response;
    let text: string;
    try {
      res = await this.fetchImpl(url, { method, headers, body, signal });
      text = await res.text();
    } catch (e) {
      if (o.signal?.aborted) throw aborted(o.signal.reason, 1);
      if (timedOut()) {
        throw new TroveError({ status: 0, error: "timeout", message: `${method} ${url}: no answer within ${this.retryOptions.timeoutMs} ms`, cause: e });
      }
      throw new TroveError({ status: 0, error: "network_error", message: `${method} ${url}: ${describe(e)}`, cause: e });
    } finally {
      cancel();
    }
    const ok = o.ok ? o.ok(res.status) : res.status >= 200 && res.status < 300;
    const requestId = res.headers.get("x-request-id");
    if (!ok) {
      let parsed: { error?: unknown; message?: unknown; request_id?: unknown } = {};
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not Trove's error body (a proxy's page): described below */
      }
      throw new TroveError({
        status: res.status,
        error: typeof parsed.error === "string" ? parsed.error : `http_${res.status}`,
        message: typeof parsed.message === "string" ? parsed.message : `${method} ${url} answered ${res.status}${text ? `: ${text.slice(0, 200)}` : ""}`,
        request_id: typeof parsed.request_id === "string" ? parsed.request_id : requestId,
        retryAfter: parseRetryAfter(res.headers.get("retry-after")),
      });
    }
    if (o.text) return { status: res.status, body: text as T, headers: res.headers };
    try {
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T, headers: res.headers };
    } catch (e) {
      // A 2xx whose body did not arrive whole: for a claim, the key makes a retry safe.
      throw new TroveError({ status: 0, error: "invalid_response", message: `${method} ${url}: the answer is not JSON (${describe(e)})`, request_id: requestId, cause: e });
    }
  }
}

/** A random UUIDv4: `crypto.randomUUID` where there is one (it needs a secure context in
 *  browsers), else from `crypto.getRandomValues`. */
export function randomKey(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const b = new Uint8Array(16);
  c.getRandomValues(b);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error ? `${e.message} (${cause.message})` : e.message;
  }
  return String(e);
}

function aborted(reason: unknown, attempts: number): TroveError {
  return new TroveError({ status: 0, error: "aborted", message: `aborted: ${describe(reason)}`, attempts, cause: reason });
}

/** A signal that aborts on the caller's signal or after `ms`. */
function attemptSignal(ms: number, outer?: AbortSignal): { signal: AbortSignal; cancel: () => void; timedOut: () => boolean } {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error("timeout"));
  }, ms);
  const onAbort = () => controller.abort(outer?.reason);
  if (outer?.aborted) controller.abort(outer.reason);
  else outer?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: controller.signal,
    cancel: () => {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
    },
    timedOut: () => timedOut,
  };
}

// Compile-time ties between the methods above and the generated routes: a route renamed or
// answering another type on the server (after `npm run gen-types`) breaks the build here.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
export type RouteChecks = [
  Assert<Same<ResponseOf<"POST /v1/zones/{zone}/claims", "201">, ClaimAnswer>>,
  Assert<Same<ResponseOf<"POST /v1/zones/{zone}/claims", "200">, ClaimAnswer>>,
  Assert<Same<ResponseOf<"POST /v1/zones/{zone}/chests/{chest_id}/claim", "201">, ClaimAnswer>>,
  Assert<Same<ResponseOf<"GET /v1/players/{player}/claims", "200">, HistoryPage>>,
  Assert<Same<ResponseOf<"GET /v1/zones/{zone}", "200">, ZoneView>>,
  Assert<Same<ResponseOf<"GET /v1/zones/{zone}/chests", "200">, ChestPage>>,
  Assert<Same<ResponseOf<"POST /v1/zones/{zone}/chests", "201">, SpawnResult>>,
  Assert<Same<ResponseOf<"POST /v1/zones/{zone}/reveal", "200">, RevealResult>>,
  Assert<Same<ResponseOf<"GET /v1/zones/{zone}/players/{player}/client-seed", "200">, ClientSeed>>,
  Assert<Same<ResponseOf<"PUT /v1/zones/{zone}/players/{player}/client-seed", "200">, ClientSeed>>,
  Assert<Same<ResponseOf<"GET /v1/zones/{zone}/epochs/{epoch}/transcript", "200">, string>>,
  Assert<Same<ResponseOf<"DELETE /v1/synthetic-zones", "200">, CleanupResult>>,
  Assert<Same<ResponseOf<"GET /v1/loot-tables/{name}", "200">, TableView>>,
  Assert<Same<ResponseOf<"PUT /v1/loot-tables/{name}", "200">, TableVersion>>,
  Assert<Same<ResponseOf<"GET /v1/leaderboards/{board}", "200">, BoardPage>>,
  Assert<Same<ResponseOf<"GET /v1/leaderboards/{board}/players/{player}", "200">, PlayerStanding>>,
  Assert<Same<ResponseOf<"GET /.well-known/trove-keys.json", "200">, ReceiptKeyList>>,
  Assert<Same<ResponseOf<"GET /healthz", "200">, Health>>,
  Assert<Same<ResponseOf<"GET /readyz", "200">, Readiness>>,
  Assert<Same<ResponseOf<"GET /readyz", "503">, Readiness>>,
  Assert<Same<Routes["PUT /v1/loot-tables/{name}"]["body"], LootTableSpec>>,
  Assert<Same<ResponseOf<"GET /v1/zones", "200">, ZoneList>>,
  Assert<Same<ResponseOf<"GET /v1/loot-tables", "200">, TableList>>,
  Assert<Same<ResponseOf<"GET /v1/shards", "200">, ShardsView>>,
  Assert<Same<ResponseOf<"POST /v1/zones/{zone}/verify", "200">, VerifyReport>>,
];
