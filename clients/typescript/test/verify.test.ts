/**
 * The client's replay against the server's: 1,000+ real claims over several loot tables
 * (rolls up to 16, two versions of one table, tables mixed in a zone), with and without
 * client seeds, by players and by admins on their behalf, in batched statements (Merkle
 * paths), over two revealed epochs and one unrevealed. `verifyClaim` must agree with
 * `trove verify` on every claim, reject a claim with any one field changed, and find exactly
 * the ledger rows corrupted behind the server's back, as `trove verify` does.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { TroveClient, Verifier, verifyClaim, type ClaimAnswer, type LootTableSpec } from "../src/index.js";
import { Trove, pool, prng, TEST_SEED } from "./harness.js";

let trove: Trove;
let admin: TroveClient;
let verifier: Verifier;
const answers: ClaimAnswer[] = [];
const rand = prng(TEST_SEED + 1);
const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;

const ZONES = ["fair-a", "fair-b", "fair-c", "fair-d"];
const PLAYERS = Array.from({ length: 30 }, (_, i) => `fair-${i}`);

function wideTable(): LootTableSpec {
  const rarities = ["common", "uncommon", "rare", "epic", "legendary"] as const;
  return {
    entries: Array.from({ length: 40 }, (_, i) => {
      const min = 1 + Math.floor(rand() * 1000);
      return {
        item: `w-item.${i}`,
        weight: 1 + Math.floor(rand() * 1_000_000),
        min_qty: min,
        max_qty: min + Math.floor(rand() * (1_000_000 - min)),
        rarity: rarities[i % 5]!,
      };
    }),
    rolls: 16,
  };
}

async function claimMany(n: number, concurrency: number): Promise<ClaimAnswer[]> {
  const clients = new Map(PLAYERS.map((p) => [p, new TroveClient({ baseUrl: trove.url, token: trove.token(p) })]));
  const plan = Array.from({ length: n }, () => ({ zone: pick(ZONES), player: pick(PLAYERS), asAdmin: rand() < 0.3 }));
  return pool(plan, concurrency, async ({ zone, player, asAdmin }) => {
    const r = asAdmin ? await admin.claim(zone, { player }) : await clients.get(player)!.claim(zone);
    return r.claim;
  });
}

before(async () => {
  trove = await Trove.start();
  admin = new TroveClient({ baseUrl: trove.url, token: trove.adminToken });
  verifier = new Verifier(new TroveClient({ baseUrl: trove.url, token: trove.playerToken }));
  await admin.putLootTable("single", { entries: [{ item: "pebble", weight: 5, min_qty: 1, max_qty: 1, rarity: "common" }], rolls: 1 });
  await admin.putLootTable("wide", wideTable());
  const triple = (gemWeight: number): LootTableSpec => ({
    entries: [
      { item: "gold", weight: 50, min_qty: 1, max_qty: 500, rarity: "common" },
      { item: "gem", weight: gemWeight, min_qty: 1, max_qty: 5, rarity: "epic" },
      { item: "crown", weight: 1, min_qty: 1, max_qty: 1, rarity: "legendary" },
    ],
    rolls: 3,
  });
  assert.equal((await admin.putLootTable("triple", triple(10))).version, 1);
  await admin.spawn("fair-a", { count: 250, loot_table: "single" });
  await admin.spawn("fair-a", { count: 250, loot_table: "starter" });
  await admin.spawn("fair-b", { count: 500, loot_table: "wide" });
  await admin.spawn("fair-c", { count: 250, loot_table: "triple" });
  assert.equal((await admin.putLootTable("triple", triple(30))).version, 2);
  await admin.spawn("fair-c", { count: 250, loot_table: "triple" });
  await admin.spawn("fair-d", { count: 500, loot_table: "starter" });
  // A third of the players set client seeds (some by an admin).
  for (const [i, p] of PLAYERS.entries()) {
    if (i % 3 !== 0) continue;
    for (const z of ZONES) {
      const c = i % 2 ? admin : new TroveClient({ baseUrl: trove.url, token: trove.token(p) });
      const set = await c.setClientSeed(z, p, `seed:${p}/${z}~${TEST_SEED}`);
      assert.equal(set.client_seed, `seed:${p}/${z}~${TEST_SEED}`);
    }
  }
});

after(async () => {
  await trove?.cleanup();
});

test("1,000+ real claims verify in the client and agree with trove verify", async () => {
  const t0 = Date.now();
  answers.push(...(await claimMany(750, 24)));
  // Some players change their client seed in the middle of the epoch.
  for (const p of PLAYERS.slice(0, 6)) await admin.setClientSeed("fair-d", p, `changed-${p}`);
  answers.push(...(await claimMany(150, 24)));
  for (const z of ZONES) assert.equal((await admin.reveal(z)).epoch, 1);
  answers.push(...(await claimMany(120, 16)));
  for (const z of ZONES) assert.equal((await admin.reveal(z)).epoch, 2);
  const pending = await claimMany(30, 8); // epoch 3, not revealed
  const claimed = Date.now() - t0;

  const batched = answers.filter((a) => a.receipt.leaf_count > 1).length;
  assert.ok(batched > 50, `only ${batched} claims came from batched statements`);
  assert.ok(answers.some((a) => a.client_seed !== ""), "no claim used a client seed");
  assert.ok(answers.some((a) => a.authorised_by?.startsWith("admin:")) && answers.some((a) => a.authorised_by === "player"));
  assert.ok(answers.some((a) => a.loot.length === 16), "no claim rolled 16 times");
  assert.ok(answers.some((a) => a.loot_table === "triple" && a.loot_table_version === 1) && answers.some((a) => a.loot_table === "triple" && a.loot_table_version === 2));

  const t1 = Date.now();
  const results = await pool(answers, 8, (a) => verifier.verifyClaim(a));
  const failed = results.map((r, i) => [r, answers[i]!] as const).filter(([r]) => !r.ok);
  assert.equal(failed.length, 0, `claims the client could not verify:\n${failed.slice(0, 3).map(([r, a]) => `${a.claim_id}: ${r.problems.join("; ")}`).join("\n")}`);
  for (const r of results) {
    assert.deepEqual(r.steps.map((s) => [s.step, s.ok]), [
      ["commitment", true], ["loot_table", true], ["draw_seed", true], ["loot", true],
      ["receipt_leaf", true], ["receipt_path", true], ["receipt_key", true], ["receipt_signature", true],
    ]);
  }
  for (const a of pending) {
    const r = await verifier.verifyClaim(a);
    assert.equal(r.ok, false);
    assert.equal(r.pending, true);
    assert.ok(r.steps.filter((s) => s.step.startsWith("receipt_")).every((s) => s.ok === true), "an unrevealed claim's receipt did not verify");
  }
  const verified = Date.now() - t1;

  // trove verify: the same claims, all clean.
  for (const z of ZONES) {
    const { code, report } = await trove.verify(z);
    const ours = answers.filter((a) => a.zone === z).length + pending.filter((a) => a.zone === z).length;
    assert.equal(code, 0, `trove verify ${z} failed: ${JSON.stringify(report).slice(0, 500)}`);
    assert.equal(report.claims_checked, ours, `trove verify ${z} checked another number of claims`);
    assert.equal(report.mismatch_count, 0);
    assert.equal(report.nonce_problem_count, 0);
    assert.equal(report.claims_with_revealed_seed, answers.filter((a) => a.zone === z).length);
  }
  console.log(`${answers.length} revealed + ${pending.length} unrevealed claims (${batched} batched) made in ${claimed} ms, verified in ${verified} ms`);
});

test("transcripts check out both ways and replay every claim", async () => {
  let lines = 0;
  for (const z of ZONES) {
    const r = await verifier.verifyZone(z);
    assert.ok(r.ok, `${z}: ${r.epochs.flatMap((e) => e.problems).slice(0, 5).join("; ")}`);
    assert.equal(r.epochs.length, 2);
    for (const e of r.epochs) {
      assert.equal(e.replayed, e.claims);
      assert.equal(e.claims, answers.filter((a) => a.zone === z && a.seed_epoch === e.epoch).length);
      lines += e.claims;
    }
  }
  assert.equal(lines, answers.length);
  // A player's receipts against the transcript, both ways.
  const player = PLAYERS[3]!;
  const mine = answers.filter((a) => a.player === player && a.zone === "fair-a" && a.seed_epoch === 1);
  assert.ok(mine.length > 0);
  const audit = await verifier.verifyEpoch("fair-a", 1, { answers: mine, player });
  assert.ok(audit.ok, audit.problems.join("; "));
  assert.equal(audit.receipts_checked, mine.length);
  // Missing one of the player's own (non-admin) receipts: the transcript holds a claim in their
  // name that nothing backs.
  const own = mine.filter((a) => a.authorised_by === "player");
  if (own.length) {
    const fewer = mine.filter((a) => a !== own[0]);
    const short = await verifier.verifyEpoch("fair-a", 1, { answers: fewer, player });
    assert.ok(!short.ok && short.problems.some((p) => p.includes(own[0]!.claim_id)));
  }
  // A transcript with one line changed, or cut off, does not verify.
  const keys = await verifier.receiptKeys();
  const text = await admin.transcriptText("fair-b", 1);
  const rows = text.trim().split("\n");
  const { parseTranscript, verifyTranscript } = await import("../src/index.js");
  const changed = [...rows];
  const line = JSON.parse(changed[1]!);
  line.loot[0].qty += 1;
  changed[1] = JSON.stringify(line);
  const lootTable = (n: string, v: number) => verifier.lootTable(n, v);
  assert.ok((await verifyTranscript(parseTranscript(rows.join("\n")), { keys, lootTable })).ok);
  assert.ok(!(await verifyTranscript(parseTranscript(changed.join("\n")), { keys, lootTable })).ok);
  assert.ok(!(await verifyTranscript(parseTranscript(rows.slice(0, -1).join("\n")), { keys, lootTable })).ok);
  const dropped = [...rows.slice(0, 2), ...rows.slice(3)];
  assert.ok(!(await verifyTranscript(parseTranscript(dropped.join("\n")), { keys })).ok);
});

/** Every single-field change of a claim answer (and of its receipt). */
function tamperings(a: ClaimAnswer): [string, ClaimAnswer][] {
  const out: [string, ClaimAnswer][] = [];
  const copy = (): ClaimAnswer => structuredClone(a);
  const flipHex = (s: string, at = s.length - 1) => s.slice(0, at) + (s[at] === "0" ? "1" : "0") + s.slice(at + 1);
  const put = (name: string, f: (c: ClaimAnswer) => void) => {
    const c = copy();
    f(c);
    out.push([name, c]);
  };
  put("zone", (c) => (c.zone = ZONES.find((z) => z !== a.zone)!));
  put("seed_epoch", (c) => (c.seed_epoch = a.seed_epoch === 1 ? 2 : 1));
  put("player", (c) => (c.player = PLAYERS.find((p) => p !== a.player)!));
  put("nonce", (c) => (c.nonce = (a.nonce ?? 0) + 1));
  put("nonce (removed)", (c) => (c.nonce = null));
  put("client_seed", (c) => (c.client_seed = `${a.client_seed}x`));
  put("claim_id", (c) => (c.claim_id = flipHex(a.claim_id)));
  put("chest_id", (c) => (c.chest_id = a.chest_id + 1));
  put("loot_table", (c) => (c.loot_table = a.loot_table === "starter" ? "single" : "starter"));
  put("loot_table_version", (c) => (c.loot_table_version = a.loot_table_version + 1));
  put("loot qty", (c) => (c.loot[0]!.qty += 1));
  put("loot item", (c) => (c.loot[0]!.item = `${a.loot[0]!.item}x`));
  put("loot rarity", (c) => (c.loot[0]!.rarity = a.loot[0]!.rarity === "legendary" ? "common" : "legendary"));
  put("loot item removed", (c) => c.loot.pop());
  put("loot item added", (c) => c.loot.push({ ...a.loot[0]! }));
  put("opened_at (1 µs)", (c) => (c.opened_at = a.opened_at.replace(/(\d)Z$/, (_, d: string) => `${(Number(d) + 1) % 10}Z`)));
  put("authorised_by", (c) => (c.authorised_by = a.authorised_by === "player" ? "admin:demo-admin" : "player"));
  put("receipt.leaf", (c) => (c.receipt.leaf = flipHex(a.receipt.leaf)));
  put("receipt.leaf_index", (c) => (c.receipt.leaf_index = a.receipt.leaf_count > 1 ? (a.receipt.leaf_index + 1) % a.receipt.leaf_count : 1));
  put("receipt.leaf_count", (c) => (c.receipt.leaf_count = a.receipt.leaf_count + 1));
  if (a.receipt.path.length) {
    put("receipt.path[0]", (c) => (c.receipt.path[0] = flipHex(a.receipt.path[0]!)));
    put("receipt.path (one dropped)", (c) => c.receipt.path.pop());
  } else {
    put("receipt.path (one added)", (c) => c.receipt.path.push(a.receipt.leaf));
  }
  put("receipt.root", (c) => (c.receipt.root = flipHex(a.receipt.root)));
  put("receipt.key_id", (c) => (c.receipt.key_id = flipHex(a.receipt.key_id)));
  put("receipt.signature", (c) => (c.receipt.signature = flipHex(a.receipt.signature, 10)));
  return out;
}

test("a claim with any one field changed is rejected", async () => {
  // Claims with a client seed, an admin's, batched ones with paths, several tables.
  const sample = [
    answers.find((a) => a.client_seed !== "" && a.receipt.leaf_count > 2),
    answers.find((a) => a.authorised_by?.startsWith("admin:") && a.receipt.path.length > 1),
    answers.find((a) => a.loot_table === "wide"),
    answers.find((a) => a.loot_table === "single"),
    answers.find((a) => a.loot_table === "triple" && a.loot_table_version === 2),
    answers.find((a) => a.receipt.leaf_count === 1),
    answers.find((a) => a.seed_epoch === 2),
  ].filter((a): a is ClaimAnswer => a !== undefined);
  assert.ok(sample.length >= 6);
  let checked = 0;
  for (const a of sample) {
    assert.ok((await verifier.verifyClaim(a)).ok);
    for (const [field, t] of tamperings(a)) {
      // The verifier fetches what the changed claim names (another epoch's seed, another
      // table version); a table version that does not exist is a rejection too.
      const v = await verifier.verifyClaim(t).catch((e: Error) => ({ ok: false, problems: [e.message] }));
      assert.equal(v.ok, false, `a claim with ${field} changed was accepted`);
      checked++;
    }
    // The right claim with the wrong material.
    const m = await verifier.material(a);
    const otherSeed = (await admin.zone(a.zone)).epochs.find((e) => e.epoch !== a.seed_epoch && e.seed)!.seed!;
    assert.equal((await verifyClaim(a, { ...m, seed: otherSeed })).ok, false, "another epoch's seed was accepted");
    // (A table whose change gives the same loot is indistinguishable; every quantity one
    // higher is not.)
    const table = structuredClone(m.lootTable!);
    for (const e of table.entries) {
      e.min_qty += 1;
      e.max_qty += 1;
    }
    assert.equal((await verifyClaim(a, { ...m, lootTable: table })).ok, false, "a changed loot table was accepted");
    for (const e of table.entries) {
      e.min_qty -= 1;
      e.max_qty -= 1;
    }
    table.rolls += 1;
    assert.equal((await verifyClaim(a, { ...m, lootTable: table })).ok, false, "a table with another roll count was accepted");
    assert.equal((await verifyClaim(a, { ...m, commitment: flip(m.commitment!) })).ok, false, "a wrong commitment was accepted");
    assert.equal((await verifyClaim(a, { ...m, keys: [] })).ok, false, "a receipt without its key was accepted");
  }
  console.log(`${checked} tampered claims over ${sample.length} real ones: all rejected`);
});

function flip(hex: string): string {
  return (hex[0] === "0" ? "1" : "0") + hex.slice(1);
}

test("ledger rows corrupted behind Trove's back: the client flags exactly what trove verify flags", async () => {
  const zone = "fair-a";
  const shard = (await admin.zone(zone)).shard;
  const victims = answers.filter((a) => a.zone === zone).slice(0, 40).filter((_, i) => i % 8 === 0);
  assert.ok(victims.length >= 4);
  for (const v of victims) {
    trove.psql(shard, `UPDATE claims SET loot = '[{"item":"pebble","qty":999,"rarity":"legendary"}]'::jsonb WHERE claim_id = '${v.claim_id}'`);
  }
  const { code, report } = await trove.verify(zone);
  assert.notEqual(code, 0);
  const serverFlags = new Set(report.mismatches.map((m) => m.claim_id));
  // The client reads the ledger through each player's history (no receipts there).
  const clientFlags = new Set<string>();
  let seen = 0;
  for (const p of PLAYERS) {
    for await (const c of admin.historyAll(p)) {
      if (c.zone !== zone) continue;
      seen++;
      const r = await verifier.verifyClaim(c);
      if (!r.ok && !r.pending) clientFlags.add(c.claim_id);
      assert.equal(r.steps.find((s) => s.step === "receipt_leaf")?.ok ?? null, null);
    }
  }
  assert.equal(seen, report.claims_checked);
  assert.deepEqual([...clientFlags].sort(), [...serverFlags].sort());
  assert.deepEqual([...serverFlags].sort(), victims.map((v) => v.claim_id).sort());
  // The signed transcript of a corrupted epoch replays wrong on exactly those claims.
  const e1 = await verifier.verifyEpoch(zone, 1);
  assert.equal(e1.ok, false);
  const named = new Set(e1.problems.map((p) => /claim ([0-9a-f-]{36})/.exec(p)?.[1]).filter(Boolean));
  assert.deepEqual([...named].sort(), victims.filter((v) => v.seed_epoch === 1).map((v) => v.claim_id).sort());
  // And the kept receipts no longer match the ledger's entries (their leaves differ).
  const receipts = victims.filter((v) => v.seed_epoch === 1);
  const audit = await verifier.verifyEpoch(zone, 1, { answers: receipts, player: receipts[0]!.player });
  assert.ok(audit.problems.some((p) => p.includes("missing from the transcript")));
});
