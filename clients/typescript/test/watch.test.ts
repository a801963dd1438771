/**
 * `watch` against a live Trove that is SIGKILLed and restarted (same data dir and port) while
 * claims go on, and against a tiny per-connection queue that makes the server send `lagged`:
 * every chest opened is delivered exactly once and the zone views equal `GET /v1/zones/{zone}`.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { TroveClient, TroveError, type ChestOpenedEvent, type SnapshotInfo, type Watch, type WatchEvent } from "../src/index.js";
import { Trove, eventually } from "./harness.js";

let trove: Trove;
/** A second instance on the same shards: claims made there while `trove` is down are the
 *  events a resume must replay. */
let other: Trove;
let admin: TroveClient;
let adminOther: TroveClient;

// Claims ride out the restarts: retried with their keys until Trove is back.
const patient = { attempts: 200, baseDelayMs: 50, maxDelayMs: 500, timeoutMs: 5_000, totalTimeoutMs: 90_000 };

before(async () => {
  trove = await Trove.start({ env: { TROVE_WS_PING_SECS: "2" } });
  other = await Trove.attach(trove);
  admin = new TroveClient({ baseUrl: trove.url, token: trove.adminToken, retry: patient });
  adminOther = new TroveClient({ baseUrl: other.url, token: trove.adminToken, retry: patient });
});

after(async () => {
  await other?.cleanup();
  await trove?.cleanup();
});

interface Recorder {
  events: WatchEvent[];
  snapshots: { zone: string; info: SnapshotInfo }[];
  statuses: string[];
  errors: string[];
  lags: (string | null)[];
}

function watcher(zones: string[]): { w: Watch; rec: Recorder } {
  const rec: Recorder = { events: [], snapshots: [], statuses: [], errors: [], lags: [] };
  const client = new TroveClient({ baseUrl: trove.url, token: trove.playerToken, WebSocket });
  const w = client.watch(
    zones,
    {
      onEvent: (e) => rec.events.push(e),
      onSnapshot: (zone, _view, info) => rec.snapshots.push({ zone, info }),
      onStatus: (s) => rec.statuses.push(s),
      onError: (e) => rec.errors.push(`${e.error}: ${e.message}`),
      onLagged: (info) => rec.lags.push(info.resumeFrom),
    },
    { reconnect: { baseDelayMs: 100, maxDelayMs: 1_000 }, pingIntervalMs: 1_000, pongTimeoutMs: 3_000 },
  );
  return { w, rec };
}

/** Claims in `zones` from `workers` loops until `stop()`; returns the acknowledged claims. */
function claimer(zones: string[], workers: number, via: (worker: number) => TroveClient = () => admin) {
  let stopped = false;
  const acked: { zone: string; chest_id: number; claim_id: string }[] = [];
  const failures: string[] = [];
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = 0; !stopped; i++) {
      const zone = zones[(w + i) % zones.length]!;
      try {
        const r = await via(w).claim(zone, { player: `watcher-${w}` });
        acked.push({ zone, chest_id: r.claim.chest_id, claim_id: r.claim.claim_id });
      } catch (e) {
        failures.push(e instanceof TroveError ? `${e.status} ${e.error}: ${e.message}` : String(e));
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });
  return {
    acked,
    failures,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every chest opened in `zone` per the ledger (chest listing), by chest id. */
async function openedChests(zone: string): Promise<Set<number>> {
  const out = new Set<number>();
  for await (const c of admin.chestsAll(zone, { state: "opened" })) out.add(c.chest_id);
  return out;
}

/** The watch's view of each zone equals the server's, and every opened chest came exactly once. */
async function assertExact(
  w: Watch,
  rec: Recorder,
  zones: string[],
  acked: { zone: string; chest_id: number }[],
  before = new Map<string, Set<number>>(),
) {
  for (const zone of zones) {
    const server = await admin.zone(zone);
    await eventually(
      `the watch's view of ${zone} to reach ${server.opened} opened`,
      () => w.view(zone)?.opened === server.opened && w.view(zone)?.total === server.total,
      20_000,
    );
    // Let anything late arrive, then compare for good.
    await sleep(300);
    const z = await admin.zone(zone);
    assert.deepEqual(w.view(zone), { total: z.total, opened: z.opened, remaining: z.remaining }, `${zone}: the view differs from GET /v1/zones/${zone}`);
    const opened = rec.events.filter((e): e is ChestOpenedEvent => e.type === "chest_opened" && e.zone === zone);
    const chests = opened.map((e) => e.chest_id);
    assert.equal(new Set(chests).size, chests.length, `${zone}: a chest was delivered twice`);
    assert.equal(new Set(opened.map((e) => e.claim_id)).size, opened.length, `${zone}: a claim was delivered twice`);
    // The ledger, less the chests opened before the watch started (in its first snapshot).
    // Chest ids are a zone's own: those of one zone say nothing of another's.
    const ledger = await openedChests(zone);
    for (const c of before.get(zone) ?? []) ledger.delete(c);
    const missing = [...ledger].filter((c) => !chests.includes(c));
    const extra = chests.filter((c) => !ledger.has(c));
    assert.deepEqual({ missing: missing.length, extra: extra.length }, { missing: 0, extra: 0 }, `${zone}: events and ledger differ (missing ${missing.slice(0, 5)}, extra ${extra.slice(0, 5)})`);
    for (const a of acked.filter((a) => a.zone === zone)) assert.ok(ledger.has(a.chest_id), `acknowledged chest ${a.chest_id} is not in the ledger`);
  }
}

test("watch across a SIGKILLed and restarted Trove: every event exactly once, views exact", async (t) => {
  const zones = ["watched-a", "watched-b", "watched-c"];
  for (const z of zones) await admin.spawn(z, { count: 3000, loot_table: "starter" });
  // Some claims before the watch starts are in its first snapshot.
  const early = new Set<number>();
  for (let i = 0; i < 5; i++) early.add((await admin.claim("watched-a", { player: "early" })).claim.chest_id);
  const { w, rec } = watcher(zones.slice(0, 2));
  t.after(() => w.close());
  await w.ready;
  assert.equal(w.view("watched-a")!.opened, 5);
  // Half the claims go through the watched instance, half through the other one, which
  // keeps claiming while the watched one is down.
  const load = claimer(zones, 6, (worker) => (worker % 2 ? admin : adminOther));
  await sleep(1_500);
  await trove.kill();
  const during = load.acked.length;
  await sleep(1_500);
  const missedWhileDown = load.acked.length - during;
  await trove.launch();
  await sleep(1_500);
  // A zone added to the running watch, and a spawn while it is watched.
  w.subscribe(["watched-c"]);
  await admin.spawn("watched-a", { count: 100, loot_table: "starter" });
  await sleep(1_000);
  // Killed again at once, and restarted without a pause.
  await trove.kill();
  await trove.launch();
  await sleep(1_500);
  await load.stop();

  await assertExact(w, rec, zones.slice(0, 2), load.acked, new Map([["watched-a", early]]));
  // The zone added later: its view is exact, nothing came twice, and nothing outside the ledger.
  const c = await admin.zone("watched-c");
  await eventually("watched-c's view", () => w.view("watched-c")?.opened === c.opened);
  const cEvents = rec.events.filter((e): e is ChestOpenedEvent => e.type === "chest_opened" && e.zone === "watched-c");
  assert.equal(new Set(cEvents.map((e) => e.chest_id)).size, cEvents.length);
  const cLedger = await openedChests("watched-c");
  assert.ok(cEvents.every((e) => cLedger.has(e.chest_id)));
  assert.ok(rec.events.some((e) => e.type === "chests_spawned" && e.zone === "watched-a" && e.count === 100), "the spawn was not delivered");

  assert.ok(w.stats.reconnects >= 2, `reconnected ${w.stats.reconnects} times`);
  assert.equal(w.stats.notResumed, 0, "a resume after the restart fell back to a snapshot");
  assert.ok(w.stats.resumed >= 2);
  assert.ok(missedWhileDown > 10, `only ${missedWhileDown} claims were made while the watched instance was down`);
  assert.deepEqual(
    rec.snapshots.map((s) => `${s.zone}:${s.info.reason}`).sort(),
    ["watched-a:subscribed", "watched-b:subscribed", "watched-c:subscribed"],
    "a snapshot other than the first ones was handed over",
  );
  const opened = rec.events.filter((e) => e.type === "chest_opened").length;
  console.log(
    `${load.acked.length} claims acknowledged over two SIGKILLs (${missedWhileDown} made on the other instance while the watched one was down); ${opened} events delivered, ${w.stats.reconnects} reconnects, ${w.stats.duplicatesDropped} repeats dropped by the client; claim errors: ${load.failures.length}`,
  );
  w.close();
  assert.equal(w.connectionStatus, "closed");
});

test("watch through lagged (a one-event queue): resumes from before the lag, every event exactly once", async (t) => {
  await trove.kill();
  trove.setEnv({ TROVE_WS_QUEUE: "1" });
  await trove.launch();
  const zones = ["lagging-a", "lagging-b"];
  for (const z of zones) await admin.spawn(z, { count: 4000, loot_table: "starter" });
  const { w, rec } = watcher(zones);
  t.after(() => w.close());
  await w.ready;
  const load = claimer(zones, 32);
  await sleep(4_000);
  await load.stop();
  await assertExact(w, rec, zones, load.acked);
  assert.ok(w.stats.lagged >= 1, "the server never sent lagged: the queue did not overflow");
  assert.ok(rec.lags.every((p) => p !== null), "a lag was resumed without a position");
  assert.equal(w.stats.notResumed, 0);
  assert.deepEqual(rec.snapshots.map((s) => s.info.reason), ["subscribed", "subscribed"]);
  const opened = rec.events.filter((e) => e.type === "chest_opened").length;
  console.log(`${load.acked.length} claims, ${opened} events, ${w.stats.lagged} lagged messages, each resumed; ${w.stats.duplicatesDropped} repeats dropped by the client`);
  w.close();
});
