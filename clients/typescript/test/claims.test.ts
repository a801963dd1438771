/**
 * Claims against a live Trove through a fetch that loses answers, fails before sending, hangs,
 * and answers 408/429/503 in Trove's place: every logical claim must end with exactly one
 * ledger entry, and other 4xx must never be retried.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { TroveClient, TroveError, type ClaimResult, type FetchLike } from "../src/index.js";
import { Trove, pool, prng, TEST_SEED } from "./harness.js";

let trove: Trove;
let admin: TroveClient;

before(async () => {
  trove = await Trove.start();
  admin = new TroveClient({ baseUrl: trove.url, token: trove.adminToken });
  await admin.putLootTable("coins", {
    entries: [
      { item: "copper", weight: 60, min_qty: 1, max_qty: 100, rarity: "common" },
      { item: "silver", weight: 30, min_qty: 1, max_qty: 10, rarity: "uncommon" },
      { item: "gold", weight: 10, min_qty: 1, max_qty: 3, rarity: "rare" },
    ],
    rolls: 2,
  });
});

after(async () => {
  await trove?.cleanup();
});

function errorResponse(status: number, error: string, retryAfter?: number): Response {
  const headers: Record<string, string> = { "content-type": "application/json", "x-request-id": "injected" };
  if (retryAfter !== undefined) headers["retry-after"] = String(retryAfter);
  return new Response(JSON.stringify({ error, message: `injected ${status}`, request_id: "injected" }), { status, headers });
}

/** Waits for the attempt's abort (the client's per-attempt timeout), then fails as fetch does. */
function hang(signal: AbortSignal | null | undefined): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(new DOMException("The operation was aborted.", "AbortError"));
    if (signal?.aborted) fail();
    signal?.addEventListener("abort", fail, { once: true });
  });
}

interface FaultCounts {
  [kind: string]: number;
}

/** A fetch that injects one fault into a share of the calls; `counts` says which. */
function faultyFetch(rand: () => number, counts: FaultCounts): FetchLike {
  const bump = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
  return async (input, init) => {
    const r = rand();
    if (r < 0.08) {
      bump("refused_before_sending");
      throw new TypeError("fetch failed (injected: connection refused)");
    }
    if (r < 0.1) {
      bump("hang_before_sending");
      return hang(init.signal);
    }
    if (r < 0.12) {
      bump("503_overloaded");
      return errorResponse(503, "overloaded", 1);
    }
    if (r < 0.13) {
      bump("429_rate_limited");
      return errorResponse(429, "rate_limited", 1);
    }
    const res = await fetch(input, init);
    if (r < 0.43) {
      // The server ran the claim; its answer is lost on the way back.
      await res.arrayBuffer();
      bump("answer_lost");
      throw new TypeError("fetch failed (injected: connection reset after the request was sent)");
    }
    if (r < 0.48) {
      await res.arrayBuffer();
      bump("408_after_running");
      return errorResponse(408, "request_timeout");
    }
    if (r < 0.52) {
      await res.arrayBuffer();
      bump("503_after_running");
      return errorResponse(503, "shard_unavailable");
    }
    if (r < 0.55) {
      await res.arrayBuffer();
      bump("hang_after_sending");
      return hang(init.signal);
    }
    if (r < 0.57) {
      // Half a body: the answer was cut off.
      const text = await res.text();
      bump("truncated_body");
      return new Response(text.slice(0, Math.floor(text.length / 2)), { status: res.status, headers: res.headers });
    }
    bump("clean");
    return res;
  };
}

test("every logical claim opens exactly one chest, whatever the network does", async () => {
  const zone = "flaky";
  const claims = 300;
  await admin.spawn(zone, { count: claims + 200, loot_table: "coins" });
  const rand = prng(TEST_SEED);
  const counts: FaultCounts = {};
  const players = Array.from({ length: 20 }, (_, i) => `flaky-${i}`);
  let retries = 0;
  const clients = new Map(
    players.map((p) => [
      p,
      new TroveClient({
        baseUrl: trove.url,
        token: trove.token(p),
        fetch: faultyFetch(rand, counts),
        retry: { attempts: 20, baseDelayMs: 5, maxDelayMs: 200, timeoutMs: 1_000, totalTimeoutMs: 60_000 },
        onRetry: () => retries++,
      }),
    ]),
  );
  const adminFlaky = new TroveClient({
    baseUrl: trove.url,
    token: trove.adminToken,
    fetch: faultyFetch(rand, counts),
    retry: { attempts: 20, baseDelayMs: 5, maxDelayMs: 200, timeoutMs: 1_000 },
    onRetry: () => retries++,
  });
  const started = Date.now();
  const results = await pool(Array.from({ length: claims }, (_, i) => i), 16, async (i): Promise<[string, ClaimResult]> => {
    const player = players[i % players.length]!;
    // Every fifth claim is an admin's on the player's behalf.
    const r = i % 5 === 0 ? await adminFlaky.claim(zone, { player }) : await clients.get(player)!.claim(zone);
    return [player, r];
  });
  const took = Date.now() - started;

  // One claim id per logical claim, never shared.
  const ids = results.map(([, r]) => r.claim.claim_id);
  assert.equal(new Set(ids).size, claims, "two logical claims got the same claim");
  const chests = results.map(([, r]) => r.claim.chest_id);
  assert.equal(new Set(chests).size, claims, "two logical claims got the same chest");
  for (const [player, r] of results) {
    assert.equal(r.claim.player, player);
    assert.equal(r.replayed, r.status === 200);
    assert.equal(r.outcome, r.replayed ? "replayed" : "opened");
  }

  const t1 = Date.now();
  // The ledger: each player's history holds exactly their logical claims, once each.
  for (const player of players) {
    const mine = results.filter(([p]) => p === player).map(([, r]) => r.claim.claim_id).sort();
    const history: string[] = [];
    for await (const c of admin.historyAll(player)) history.push(c.claim_id);
    assert.deepEqual(history.sort(), mine, `${player}'s ledger entries differ from their logical claims`);
  }
  const z = await admin.zone(zone);
  assert.equal(z.opened, claims, "the zone opened more chests than there were logical claims");
  let opened = 0;
  for await (const c of admin.chestsAll(zone, { state: "opened" })) {
    opened++;
    assert.ok(c.opened_by && players.includes(c.opened_by));
  }
  assert.equal(opened, claims);

  const checked = Date.now() - t1;
  const replayed = results.filter(([, r]) => r.replayed).length;
  assert.ok((counts.answer_lost ?? 0) > 0 && replayed > 0, "the faults never made a claim replay");
  assert.ok(retries > 0);
  console.log(
    `${claims} logical claims in ${took} ms (ledger checked in ${checked} ms): ${retries} retries, ${replayed} answered by replay; faults ${JSON.stringify(counts)}; seed ${TEST_SEED}`,
  );
});

test("a key reused by racing calls opens one chest: one 201, the other a replay", async () => {
  const zone = "racing";
  await admin.spawn(zone, { count: 10, loot_table: "coins" });
  const c = new TroveClient({ baseUrl: trove.url, token: trove.token("racer") });
  for (let round = 0; round < 5; round++) {
    const key = `race-${round}-${TEST_SEED}`;
    const [a, b] = await Promise.all([c.claim(zone, { key }), c.claim(zone, { key })]);
    assert.equal(a.claim.claim_id, b.claim.claim_id);
    assert.deepEqual([a.status, b.status].sort(), [200, 201]);
    assert.equal(a.idempotencyKey, key);
  }
  assert.equal((await admin.zone(zone)).opened, 5);
});

/** A fetch that counts calls. */
function counting(): { fetch: FetchLike; calls: () => number } {
  let n = 0;
  return { fetch: (input, init) => (n++, fetch(input, init)), calls: () => n };
}

test("other 4xx are thrown at once as TroveError, never retried", async () => {
  await admin.spawn("tiny", { count: 2, loot_table: "coins" });
  const f = counting();
  const c = new TroveClient({ baseUrl: trove.url, token: trove.token("tiny-player"), fetch: f.fetch, retry: { baseDelayMs: 1 } });
  await c.claim("tiny");
  await c.claim("tiny");
  const calls = f.calls();
  const exhausted = await c.claim("tiny").then(
    () => assert.fail("a claim in an exhausted zone succeeded"),
    (e: unknown) => e,
  );
  assert.ok(exhausted instanceof TroveError);
  assert.equal(exhausted.status, 409);
  assert.equal(exhausted.error, "zone_exhausted");
  assert.match(exhausted.request_id ?? "", /^[0-9a-f-]{36}$/);
  assert.ok(exhausted.message.length > 0);
  assert.equal(exhausted.attempts, 1);
  assert.equal(f.calls(), calls + 1, "a 409 was retried");

  const cases: [() => Promise<unknown>, number, string][] = [
    [() => c.claim("no-such-zone"), 404, "zone_not_found"],
    [() => c.claim("Bad Zone!"), 400, "invalid_zone"],
    [() => c.claim("tiny", { chest: 1 }), 409, "chest_already_opened"],
    [() => c.claim("tiny", { player: "someone-else" }), 403, "forbidden"],
    [() => new TroveClient({ baseUrl: trove.url, token: "nope", fetch: f.fetch }).zone("tiny"), 401, "invalid_token"],
  ];
  for (const [p, status, error] of cases) {
    const before = f.calls();
    const e = await p().then(
      () => assert.fail(`expected ${status} ${error}`),
      (e: unknown) => e,
    );
    assert.ok(e instanceof TroveError, String(e));
    assert.equal(e.status, status, `${error}: ${e.message}`);
    assert.equal(e.error, error);
    assert.equal(f.calls(), before + 1, `${error} was retried`);
  }

  // The same key for another chest: 422, not retried.
  await admin.spawn("keyed", { count: 5, loot_table: "coins" });
  await c.claim("keyed", { chest: 1, key: "k-422" });
  const before = f.calls();
  const reused = await c.claim("keyed", { chest: 2, key: "k-422" }).then(
    () => assert.fail("a reused key opened another chest"),
    (e: unknown) => e as TroveError,
  );
  assert.equal(reused.status, 422);
  assert.equal(reused.error, "idempotency_key_reused");
  assert.equal(f.calls(), before + 1);
  // Retrying the first with its key replays it.
  const again = await c.claim("keyed", { chest: 1, key: "k-422" });
  assert.equal(again.status, 200);
});

test("Retry-After is honoured, and the key stays the same across retries", async () => {
  await admin.spawn("patient", { count: 5, loot_table: "coins" });
  const keys: string[] = [];
  let n = 0;
  const f: FetchLike = async (input, init) => {
    keys.push(String((init.headers as Record<string, string>)["idempotency-key"]));
    if (n++ < 2) return errorResponse(n === 1 ? 503 : 429, n === 1 ? "shard_unavailable" : "rate_limited", 1);
    return fetch(input, init);
  };
  const c = new TroveClient({ baseUrl: trove.url, token: trove.token("patient-player"), fetch: f, retry: { baseDelayMs: 1 } });
  const t0 = Date.now();
  const r = await c.claim("patient");
  const took = Date.now() - t0;
  assert.equal(r.status, 201);
  assert.equal(r.attempts, 3);
  assert.ok(took >= 2000, `two Retry-After: 1 answers took only ${took} ms`);
  assert.equal(new Set(keys).size, 1, "the idempotency key changed between attempts");
  assert.equal(keys[0], r.idempotencyKey);
});

test("when every attempt fails the claim throws the last error with the attempts made", async () => {
  const f: FetchLike = async () => {
    throw new TypeError("fetch failed (injected)");
  };
  const c = new TroveClient({ baseUrl: trove.url, token: trove.token("unlucky"), fetch: f, retry: { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 } });
  const e = await c.claim("flaky").then(
    () => assert.fail("succeeded without a network"),
    (e: unknown) => e as TroveError,
  );
  assert.ok(e instanceof TroveError);
  assert.equal(e.status, 0);
  assert.equal(e.error, "network_error");
  assert.equal(e.attempts, 4);
  // An aborted claim stops at once.
  const ac = new AbortController();
  ac.abort(new Error("user gave up"));
  const aborted = await new TroveClient({ baseUrl: trove.url, token: trove.token("unlucky") })
    .claim("flaky", { signal: ac.signal })
    .then(
      () => assert.fail("an aborted claim succeeded"),
      (e: unknown) => e as TroveError,
    );
  assert.equal(aborted.error, "aborted");
});
