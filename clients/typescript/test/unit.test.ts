/** The client's pieces on their own (no Trove): ChaCha20, hashes, the draw, receipts, retries, the watch protocol. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  below,
  backoffDelay,
  canonicalJson,
  chachaBlock,
  ChaCha20Rng,
  drawSeed,
  fromHex,
  hmacSha256Sync,
  merkleRoot,
  parseRetryAfter,
  parseTranscript,
  roll,
  rootFromPath,
  sha256Sync,
  timestampMicros,
  toHex,
  TroveClient,
  webCryptoHmacSha256,
  webCryptoSha256,
  type WebSocketLike,
} from "../src/index.js";
import { nodeHash } from "../src/receipts.js";

const words = (s: string) => s.trim().split(/\s+/).map((w) => parseInt(w, 16));

test("ChaCha20 matches RFC 8439's block and keystream vectors", () => {
  // RFC 8439 2.3.2: key 00..1f, nonce 00:00:00:09:00:00:00:4a:00:00:00:00, counter 1. In
  // rand_chacha's layout (64-bit counter, 64-bit stream) the nonce's first word is the
  // counter's high half and the rest the stream.
  const key = new Uint32Array(8);
  const kb = Uint8Array.from({ length: 32 }, (_, i) => i);
  for (let i = 0; i < 8; i++) key[i] = new DataView(kb.buffer).getUint32(4 * i, true);
  const block = chachaBlock(key, 1n | (0x09000000n << 32n), 0x4a000000n);
  assert.deepEqual(
    [...block],
    words(`e4e7f110 15593bd1 1fdd0f50 c47120a3 c7f4d1c7 0368c033 9aaa2204 4e6cd4c3
           466482d2 09aa9f07 05d7c214 a2028bd9 d19c12b5 b94e16de e883d0cb 4e3c50a2`),
  );
  // RFC 8439 A.1 #1 (zero key, zero nonce, counter 0) as ChaCha20Rng::from_seed([0; 32]) reads it.
  const rng = new ChaCha20Rng(new Uint8Array(32));
  const stream = new Uint8Array(64);
  const dv = new DataView(stream.buffer);
  for (let i = 0; i < 8; i++) dv.setBigUint64(8 * i, rng.nextU64(), true);
  assert.equal(
    toHex(stream),
    "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586",
  );
  // The stream goes on into the next block, and a clone continues from the same place.
  const a = new ChaCha20Rng(new Uint8Array(32));
  for (let i = 0; i < 7; i++) a.nextU64();
  const b = a.clone();
  assert.equal(a.nextU64(), b.nextU64());
  assert.equal(a.nextU64(), b.nextU64());
});

test("draw seeds match the README's and fairness.rs's pinned vectors", async () => {
  const zero = new Uint8Array(32);
  assert.equal(
    toHex(await drawSeed(zero, "z", "p", { version: 2, clientSeed: "lucky", nonce: 3 })),
    "3e6ede6177225bc70710fa04ddbe4052784188225a1f78c599f4c11b5ad2dd6c",
  );
  assert.equal(
    toHex(await drawSeed(zero, "z", "p", { version: 1, claimId: "00000000-0000-0000-0000-000000000001" })),
    "a2964136bc8db23099c00c176dc774f0f9372b629fda42c83aee42133cfeeb06",
  );
});

test("SHA-256 and HMAC-SHA256 agree with WebCrypto at every padding boundary", async () => {
  assert.equal(toHex(sha256Sync(new TextEncoder().encode("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  for (const n of [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000]) {
    const data = new Uint8Array(randomBytes(n));
    assert.equal(toHex(sha256Sync(data)), toHex(await webCryptoSha256(data)), `sha256 of ${n} bytes`);
    for (const k of [1, 32, 64, 65, 200]) {
      const key = new Uint8Array(randomBytes(k));
      assert.equal(toHex(hmacSha256Sync(key, data)), toHex(await webCryptoHmacSha256(key, data)), `hmac ${k}/${n}`);
    }
  }
});

/** An rng that returns the given u64s. */
const scripted = (xs: bigint[]) => ({ nextU64: () => xs.shift() ?? assert.fail("the script ran out") });
const U64_MAX = (1n << 64n) - 1n;

test("below() redraws above the last whole multiple, as fairness::below does", () => {
  // n = 3: 2^64 mod 3 = 1, so u64::MAX (and only it) is redrawn.
  assert.equal(below(scripted([U64_MAX, 5n]), 3n), 2n);
  assert.equal(below(scripted([U64_MAX - 1n]), 3n), (U64_MAX - 1n) % 3n);
  // n = 2^63 + 1: one whole multiple fits in 2^64, so everything from n on is redrawn.
  const n = (1n << 63n) + 1n;
  assert.equal(below(scripted([n, U64_MAX, n - 1n]), n), n - 1n);
  assert.equal(below(scripted([7n]), 1n), 0n);
});

test("roll() walks the weights in order and draws quantities in range", () => {
  const table = {
    rolls: 3,
    entries: [
      { item: "a", weight: 1, min_qty: 1, max_qty: 1, rarity: "common" as const },
      { item: "b", weight: 2, min_qty: 5, max_qty: 9, rarity: "rare" as const },
    ],
  };
  // tickets: 0 -> a (qty draw 10 % 1), 1 -> b (qty 5 + 12 % 5), 2 -> b (qty 5 + 4 % 5)
  const rng = scripted([0n, 10n, 1n, 12n, 2n, 4n]) as unknown as ChaCha20Rng;
  assert.deepEqual(roll(table, rng), [
    { item: "a", qty: 1, rarity: "common" },
    { item: "b", qty: 7, rarity: "rare" },
    { item: "b", qty: 9, rarity: "rare" },
  ]);
});

test("receipt encodings: opened_at in microseconds, canonical loot JSON", () => {
  const base = BigInt(Date.UTC(2026, 11, 1, 20, 0, 32)) * 1000n;
  assert.equal(timestampMicros("2026-12-01T20:00:32.101883Z"), base + 101_883n);
  assert.equal(timestampMicros("2026-12-01T20:00:32Z"), base);
  assert.equal(timestampMicros("2026-12-01T20:00:32.1Z"), base + 100_000n);
  assert.equal(timestampMicros("2026-12-01T20:00:32.101883999Z"), base + 101_883n);
  assert.equal(timestampMicros("2026-12-01T22:00:32.5+02:00"), base + 500_000n);
  assert.equal(timestampMicros("1969-12-31T23:59:59.5Z"), -500_000n);
  assert.equal(timestampMicros("yesterday"), null);
  assert.equal(canonicalJson([{ rarity: "rare", qty: 2, item: "gem" }]), '[{"item":"gem","qty":2,"rarity":"rare"}]');
  assert.equal(canonicalJson({ b: [1, { d: null, c: "x\n\"" }], a: true }), '{"a":true,"b":[1,{"c":"x\\n\\"","d":null}]}');
});

/** RFC 6962 inclusion path, the straightforward way (receipts.rs's `inclusion_path`). */
async function inclusionPath(leaves: Uint8Array[], index: number): Promise<Uint8Array[]> {
  const n = leaves.length;
  if (n <= 1) return [];
  let k = 1;
  while (k * 2 < n) k *= 2;
  if (index < k) return [...(await inclusionPath(leaves.slice(0, k), index)), await merkleRoot(leaves.slice(k))];
  return [...(await inclusionPath(leaves.slice(k), index - k)), await merkleRoot(leaves.slice(0, k))];
}

test("every leaf of every tree size proves its way to the root, and nothing else does", async () => {
  for (let n = 1; n <= 33; n++) {
    const leaves = Array.from({ length: n }, (_, i) => sha256Sync(Uint8Array.of(i)));
    const root = await merkleRoot(leaves);
    for (let i = 0; i < n; i++) {
      const path = await inclusionPath(leaves, i);
      assert.deepEqual(await rootFromPath(leaves[i]!, i, n, path), root, `${i} of ${n}`);
      if (n > 1) assert.notDeepEqual(await rootFromPath(leaves[i]!, (i + 1) % n, n, path), root);
      assert.notDeepEqual(await rootFromPath(sha256Sync(Uint8Array.of(255)), i, n, path), root);
      assert.equal(await rootFromPath(leaves[i]!, n, n, path), null);
      // (A path may also fit another tree size; the leaf count is in the signed message.)
    }
  }
  const l = Array.from({ length: 3 }, (_, i) => sha256Sync(Uint8Array.of(i)));
  assert.deepEqual(await merkleRoot(l), await nodeHash(await nodeHash(l[0]!, l[1]!), l[2]!));
  assert.equal(fromHex("zz"), null);
});

test("backoff: exponential with jitter, capped, Retry-After as a floor", () => {
  const o = { baseDelayMs: 100, maxDelayMs: 1000 };
  for (let i = 0; i < 200; i++) {
    const d1 = backoffDelay(1, o);
    assert.ok(d1 >= 50 && d1 <= 100);
    const d4 = backoffDelay(4, o);
    assert.ok(d4 >= 400 && d4 <= 800);
    const d20 = backoffDelay(20, o);
    assert.ok(d20 >= 500 && d20 <= 1000);
    const ra = backoffDelay(1, o, 2);
    assert.ok(ra >= 2000 && ra <= 2200);
  }
  assert.equal(parseRetryAfter("3"), 3);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter(new Date(Date.now() + 5000).toUTCString()) !== null, true);
  assert.equal(parseRetryAfter("soon"), null);
});

test("a transcript without its trailer is incomplete", () => {
  const head = JSON.stringify({ transcript: "trove/transcript/v1", zone: "z", epoch: 1, draw_version: 2, seed: "00", seed_commitment: "00", revealed_at: null });
  const line = JSON.stringify({ claim_id: "x", leaf: "00" });
  const trailer = JSON.stringify({ claims: 1, digest: "00", key_id: "k", signature: "00" });
  const whole = parseTranscript([head, line, trailer].join("\n") + "\n");
  assert.equal(whole.complete, true);
  assert.equal(whole.claims.length, 1);
  const cut = parseTranscript([head, line].join("\n"));
  assert.equal(cut.complete, false);
  assert.equal(cut.trailer, null);
  assert.equal(cut.claims.length, 1);
});

// ---- the watch protocol, against a scripted server -----------------------------------------

class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: ((ev: any) => void) | null = null;
  onmessage: ((ev: any) => void) | null = null;
  onclose: ((ev: any) => void) | null = null;
  onerror: ((ev: any) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.({});
    }, 0);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code: 1006, reason: "" }), 0);
  }
  /** The server sends a message. */
  push(msg: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  lastSubscribe() {
    return [...this.sent].reverse().find((m) => m.op === "subscribe") as { zones: string[]; since?: string } | undefined;
  }
}

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));
/** Waits (up to 5 s) until `f` gives something. */
async function until<T>(what: string, f: () => T | undefined | false): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await tick(2);
  }
}
const snap = (zone: string, total: number, opened: number) => ({ zone, total, opened, remaining: total - opened });
const view = (total: number, opened: number) => ({ total, opened, remaining: total - opened });
const opened = (zone: string, chest: number, position: string) => ({
  type: "chest_opened", zone, chest_id: chest, player: "p", rarity: "common", opened_at: "2026-12-01T00:00:00Z", claim_id: `claim-${zone}-${chest}`, position,
});

test("watch: views, lagged resumes from the position before it, reconnects resume, repeats are dropped", async () => {
  FakeSocket.all = [];
  const client = new TroveClient({ baseUrl: "http://trove.test", token: "t", WebSocket: FakeSocket });
  const events: string[] = [];
  const snapshots: string[] = [];
  const w = client.watch(["z"], {
    onEvent: (e) => events.push(e.type === "chest_opened" ? `open:${e.chest_id}` : `spawn:${e.count}`),
    onSnapshot: (zone, v, info) => snapshots.push(`${zone}:${info.reason}:${v.opened}`),
  }, { reconnect: { baseDelayMs: 1, maxDelayMs: 2 } });
  const s1 = await until("the first socket", () => FakeSocket.all[0]);
  await until("the first subscribe", () => s1.lastSubscribe());
  assert.equal(s1.url, "ws://trove.test/v1/ws?token=t");
  assert.deepEqual(s1.lastSubscribe(), { op: "subscribe", zones: ["z"] });
  s1.push({ type: "subscribed", zones: [snap("z", 10, 2)], position: "1.P0" });
  await w.ready;
  assert.equal(w.position, "1.P0");
  s1.push(opened("z", 3, "1.P1"));
  s1.push(opened("z", 4, "1.P2"));
  assert.deepEqual(w.view("z"), view(10, 4));
  assert.equal(w.position, "1.P2");

  // lagged: the view jumps to its snapshot, the resume asks from P2 (before the lag), and
  // the position stays at P2 until the resume is answered.
  s1.push({ type: "lagged", message: "…", zones: [snap("z", 10, 7)], position: "1.P5" });
  assert.deepEqual(s1.lastSubscribe(), { op: "subscribe", zones: ["z"], since: "1.P2" });
  s1.push(opened("z", 8, "1.P6")); // live, after the lag
  assert.equal(w.position, "1.P2");
  s1.push(opened("z", 5, "1.P3")); // replayed: skipped by the lag
  s1.push(opened("z", 6, "1.P4"));
  assert.deepEqual(w.view("z"), view(10, 7), "events during a resume were counted on top of a snapshot");
  s1.push({ type: "subscribed", zones: [snap("z", 10, 8)], position: "1.P6", resumed: true });
  assert.deepEqual(w.view("z"), view(10, 8));
  assert.equal(w.position, "1.P6");
  s1.push({ type: "chests_spawned", zone: "z", count: 5, total: 15, remaining: 7, position: "1.P7" });
  assert.deepEqual(w.view("z"), view(15, 8));

  // The socket drops: the watch reconnects and resumes from P7; a repeat is dropped.
  s1.close();
  const s2 = await until("a reconnect", () => FakeSocket.all[1]);
  await until("the resume", () => s2.lastSubscribe());
  assert.deepEqual(s2.lastSubscribe(), { op: "subscribe", zones: ["z"], since: "1.P7" });
  s2.push(opened("z", 8, "1.P6")); // a repeat
  s2.push(opened("z", 9, "1.P8"));
  s2.push({ type: "subscribed", zones: [snap("z", 15, 9)], position: "1.P8", resumed: true });
  assert.deepEqual(w.view("z"), view(15, 9));
  assert.equal(w.stats.duplicatesDropped, 1);

  // A resume that could not replay hands the snapshot over; so does a resync.
  s2.close();
  const s3 = await until("another reconnect", () => FakeSocket.all[2]);
  await until("its resume", () => s3.lastSubscribe());
  s3.push({ type: "subscribed", zones: [snap("z", 15, 12)], position: "1.P9", resumed: false });
  s3.push({ type: "resync", message: "…", zones: [snap("z", 15, 13)], position: "1.P10" });
  assert.deepEqual(w.view("z"), view(15, 13));
  assert.equal(w.position, "1.P10");

  // A zone added later: events before its first snapshot are counted in it, not delivered.
  w.subscribe(["y"]);
  assert.deepEqual(s3.lastSubscribe(), { op: "subscribe", zones: ["z", "y"], since: "1.P10" });
  s3.push(opened("y", 1, "1.P10a"));
  s3.push({ type: "subscribed", zones: [snap("z", 15, 13), snap("y", 4, 1)], position: "1.P11", resumed: true });
  s3.push(opened("y", 2, "1.P12"));
  assert.deepEqual(w.view("y"), view(4, 2));
  w.unsubscribe(["y"]);
  assert.deepEqual(s3.sent.at(-1), { op: "unsubscribe", zones: ["y"] });
  s3.push(opened("y", 3, "1.P13"));
  assert.equal(w.view("y"), undefined);

  assert.deepEqual(events, ["open:3", "open:4", "open:8", "open:5", "open:6", "spawn:5", "open:9", "open:2"]);
  assert.deepEqual(snapshots, ["z:subscribed:2", "z:not_resumed:12", "z:resync:13", "y:subscribed:1"]);
  w.close();
  await tick(10);
  assert.equal(FakeSocket.all.length, 3, "reconnected after close()");
});

test("watch: a silent socket is dropped and replaced; invalid positions start over", async () => {
  FakeSocket.all = [];
  const client = new TroveClient({ baseUrl: "https://trove.test/", token: () => "tok", WebSocket: FakeSocket });
  const w = client.watch(["z"], {}, { since: "1.OLD", pingIntervalMs: 20, pongTimeoutMs: 20, reconnect: { baseDelayMs: 1, maxDelayMs: 2 } });
  const s1 = await until("the first socket", () => FakeSocket.all[0]);
  await until("the first subscribe", () => s1.lastSubscribe());
  assert.equal(s1.url, "wss://trove.test/v1/ws?token=tok");
  assert.deepEqual(s1.lastSubscribe(), { op: "subscribe", zones: ["z"], since: "1.OLD" });
  s1.push({ type: "error", error: "invalid_position", message: "since must be a position Trove sent" });
  assert.deepEqual(s1.lastSubscribe(), { op: "subscribe", zones: ["z"] });
  s1.push({ type: "subscribed", zones: [snap("z", 3, 0)], position: "1.NEW" });
  await until("a ping", () => s1.sent.some((m) => m.op === "ping"));
  // No answer at all: dropped and reconnected.
  const s2 = await until("a socket replacing the silent one", () => FakeSocket.all[1]);
  assert.deepEqual(await until("its resume", () => s2.lastSubscribe()), { op: "subscribe", zones: ["z"], since: "1.NEW" });
  w.close();
});

// ---- the console's admin calls, against a scripted fetch -------------------------------------

test("listZones, lootTables, shards and verifyZoneOnServer: routes, queries, pages; verify_busy is not retried", async () => {
  const calls: { method: string; url: string; auth: string | undefined }[] = [];
  const answers: Record<string, (url: URL) => { status: number; body: unknown }> = {
    "GET /v1/zones": (u) =>
      u.searchParams.get("after") === "b"
        ? { status: 200, body: { zones: [{ zone: "c" }], next: null } }
        : { status: 200, body: { zones: [{ zone: "a" }, { zone: "b" }], next: "b" } },
    "GET /v1/loot-tables": () => ({ status: 200, body: { loot_tables: [{ name: "starter", latest_version: 2, created_at: "2026-12-01T00:00:00Z" }], next: null } }),
    "GET /v1/shards": () => ({ status: 200, body: { shards: [{ shard: 0, reachable: true, url: "postgres://x", hosts: [] }], moves: [] } }),
    "POST /v1/zones/m%C3%A9/verify": () => ({ status: 429, body: { error: "verify_busy", message: "a verification is running", request_id: "r1" } }),
  };
  const fetch = async (input: string, init: RequestInit) => {
    const url = new URL(input);
    const h = init.headers as Record<string, string>;
    calls.push({ method: init.method!, url: url.pathname + url.search, auth: h.authorization });
    const a = answers[`${init.method} ${url.pathname}`]?.(url) ?? { status: 404, body: { error: "not_found", message: "?", request_id: "r" } };
    return new Response(JSON.stringify(a.body), { status: a.status, headers: { "content-type": "application/json" } });
  };
  const trove = new TroveClient({ baseUrl: "http://trove.test/", token: () => "t0k", fetch, retry: { baseDelayMs: 1, maxDelayMs: 2 } });

  const page = await trove.listZones({ limit: 2, synthetic: false });
  assert.deepEqual(page.zones.map((z) => z.zone), ["a", "b"]);
  assert.equal(calls.at(-1)!.url, "/v1/zones?limit=2&synthetic=false");
  assert.equal(calls.at(-1)!.auth, "Bearer t0k");
  const all: string[] = [];
  for await (const z of trove.listZonesAll({ pageSize: 2, synthetic: true })) all.push(z.zone);
  assert.deepEqual(all, ["a", "b", "c"]);
  assert.equal(calls.at(-1)!.url, "/v1/zones?after=b&limit=2&synthetic=true");

  assert.equal((await trove.lootTables({ after: "s" })).loot_tables[0]!.latest_version, 2);
  assert.equal(calls.at(-1)!.url, "/v1/loot-tables?after=s");
  assert.equal((await trove.shards()).shards[0]!.reachable, true);

  const before = calls.length;
  await assert.rejects(trove.verifyZoneOnServer("mé"), (e: any) => e.status === 429 && e.error === "verify_busy" && e.request_id === "r1");
  assert.equal(calls.length, before + 1, "a busy verification is answered at once, not retried");
  assert.equal(calls.at(-1)!.method, "POST");
});
