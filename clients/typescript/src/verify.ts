/**
 * The provably fair replay, in the client (README "Provably fair draws", `src/fairness.rs`):
 *
 *   draw_seed = HMAC-SHA256(key = seed, msg = "trove/claim/v2" 0 zone 0 player 0 client_seed 0 u64be(nonce))
 *               (version 1: "trove/claim/v1" 0 zone 0 player 0 claim_id[16])
 *   rng       = ChaCha20Rng::from_seed(draw_seed)
 *   start     = rng.next_u64() >> 1
 *   loot      = for each of `rolls`: entry = weighted pick with below(sum of weights),
 *               qty = min_qty + below(max_qty - min_qty + 1)
 *
 * plus the commitment (`SHA-256(seed)`), the signed receipt (leaf, Merkle path, Ed25519
 * signature) and epoch transcripts (every line's leaf, the digest, the signature, gapless
 * nonces, every claim replayed, and a player's receipts against it both ways).
 */
import {
  concat,
  equalBytes,
  fromHex,
  hmacSha256,
  sha256,
  toHex,
  u64be,
  utf8,
  uuidBytes,
  webCryptoEd25519,
  type Bytes,
  type Ed25519Verify,
} from "./bytes.js";
import { below, ChaCha20Rng } from "./chacha.js";
import {
  batchMessage,
  canonicalJson,
  keyIdOf,
  leafHash,
  receiptBytes,
  ReceiptFieldError,
  rootFromPath,
  transcriptDigestHead,
  transcriptMessage,
  type ReceiptFields,
} from "./receipts.js";
import type { TroveClient } from "./client.js";
import type { Transcript, TranscriptLine } from "./transcript.js";
import type { Claim, LootItem, PublicKey, Receipt, ReceiptKeyList, TableView, ZoneView } from "./types.js";

/** A loot table version as `GET /v1/loot-tables/{name}?version=` answers it. */
export type LootTable = Pick<TableView, "entries" | "rolls"> & Partial<Pick<TableView, "name" | "version">>;

/** What a draw is bound to besides the seed, zone and player. */
export type DrawNonce = { version: 1; claimId: string } | { version: 2; clientSeed: string; nonce: number | bigint };

/** The ChaCha20 seed of one claim's draw. */
export async function drawSeed(seed: Bytes, zone: string, player: string, nonce: DrawNonce): Promise<Bytes> {
  const zero = Uint8Array.of(0);
  let msg: Bytes;
  if (nonce.version === 1) {
    const id = uuidBytes(nonce.claimId);
    if (!id) throw new TypeError("claim_id is not a UUID");
    msg = concat(utf8("trove/claim/v1"), zero, utf8(zone), zero, utf8(player), zero, id);
  } else {
    msg = concat(utf8("trove/claim/v2"), zero, utf8(zone), zero, utf8(player), zero, utf8(nonce.clientSeed), zero, u64be(nonce.nonce));
  }
  return hmacSha256(seed, msg);
}

export interface Draw {
  /** The 63-bit start: the claim opened the first unopened chest with id >= 1 + start % chest_count. */
  start: bigint;
  loot: LootItem[];
}

/** Rolls a table from the stream (Trove's `fairness::roll`). */
export function roll(table: LootTable, rng: ChaCha20Rng): LootItem[] {
  const entries = table.entries;
  const total = entries.reduce((s, e) => s + BigInt(e.weight), 0n);
  const out: LootItem[] = [];
  for (let r = 0; r < table.rolls; r++) {
    let ticket = below(rng, total);
    const entry = entries.find((e) => {
      const w = BigInt(e.weight);
      if (ticket < w) return true;
      ticket -= w;
      return false;
    });
    if (!entry) continue;
    const span = BigInt(entry.max_qty - entry.min_qty) + 1n;
    out.push({ item: entry.item, qty: entry.min_qty + Number(below(rng, span)), rarity: entry.rarity });
  }
  return out;
}

/** The draw a seed gives: the start, then the loot from the stream right after it. */
export function drawFrom(draw_seed: Bytes, table: LootTable): Draw {
  const rng = new ChaCha20Rng(draw_seed);
  const start = rng.nextU64() >> 1n;
  return { start, loot: roll(table, rng) };
}

export type StepName =
  | "commitment"
  | "loot_table"
  | "draw_seed"
  | "loot"
  | "receipt_leaf"
  | "receipt_path"
  | "receipt_key"
  | "receipt_signature";

export interface VerifyStep {
  step: StepName;
  /** null: not checked (what it needs was not given). */
  ok: boolean | null;
  detail: string;
}

export interface ClaimVerification {
  /** Every step that ran passed, and the draw was replayed. */
  ok: boolean;
  /** The draw could not be replayed yet: its epoch's seed is not revealed. */
  pending: boolean;
  steps: VerifyStep[];
  problems: string[];
  draw_version: 1 | 2 | null;
  /** Hex. */
  draw_seed: string | null;
  /** Decimal (a 63-bit integer). */
  start: string | null;
  expected_loot: LootItem[] | null;
  recorded_loot: unknown;
  /** The receipt's leaf as recomputed from the claim's fields, hex. */
  leaf: string | null;
}

export interface VerifyMaterial {
  /** The epoch's revealed seed (hex or bytes); without it only the receipt is checked. */
  seed?: string | Bytes | null;
  /** The loot table version the claim names; needed to replay the loot. */
  lootTable?: LootTable | null;
  /** The epoch's published commitment (hex), checked against SHA-256 of the seed. */
  commitment?: string | null;
  /** The receipt keys (`GET /.well-known/trove-keys.json`); without them no signature is checked. */
  keys?: ReceiptKeyList | PublicKey[] | null;
  /** The epoch's draw version when known (a transcript header says it); default: 2 when the
   *  claim has a nonce, else 1. */
  drawVersion?: 1 | 2;
  /** Ed25519 verification (default: WebCrypto's). */
  ed25519?: Ed25519Verify;
}

/** A claim with its answer's receipt (a history entry has none: then the receipt is skipped). */
export type VerifiableClaim = Claim & { receipt?: Receipt | null };

/**
 * Replays one claim's draw and checks its receipt. Each step says what it checked; `ok` is
 * true only when every check ran and passed (a claim of an unrevealed epoch is `pending`).
 */
export async function verifyClaim(claim: VerifiableClaim, material: VerifyMaterial = {}): Promise<ClaimVerification> {
  const steps: VerifyStep[] = [];
  const add = (step: StepName, ok: boolean | null, detail: string) => steps.push({ step, ok, detail });
  const result: ClaimVerification = {
    ok: false,
    pending: false,
    steps,
    problems: [],
    draw_version: null,
    draw_seed: null,
    start: null,
    expected_loot: null,
    recorded_loot: claim?.loot,
    leaf: null,
  };

  // 1. The seed against its commitment.
  const seed = typeof material.seed === "string" ? fromHex(material.seed) : (material.seed ?? null);
  if (material.seed != null && (!seed || seed.length !== 32)) {
    add("commitment", false, "the seed is not 32 bytes of hex");
  } else if (seed && material.commitment != null) {
    const c = toHex(await sha256(seed));
    const ok = c === String(material.commitment).toLowerCase();
    add("commitment", ok, ok ? `SHA-256(seed) = ${c}, the published commitment` : `SHA-256(seed) = ${c}, but the commitment is ${material.commitment}`);
  } else if (seed) {
    add("commitment", null, "no commitment given to check the seed against");
  } else {
    add("commitment", null, "the epoch's seed is not revealed yet");
  }

  // 2. The loot table is the version the claim names.
  const table = material.lootTable ?? null;
  if (table) {
    const nameOk = table.name === undefined || table.name === claim.loot_table;
    const versionOk = table.version === undefined || table.version === claim.loot_table_version;
    add(
      "loot_table",
      nameOk && versionOk,
      nameOk && versionOk
        ? `${claim.loot_table} v${claim.loot_table_version}: ${table.entries.length} entries, ${table.rolls} roll(s)`
        : `the claim names ${claim.loot_table} v${claim.loot_table_version}, the table given is ${table.name} v${table.version}`,
    );
  } else {
    add("loot_table", null, "no loot table given");
  }

  // 3. The draw seed and 4. the loot.
  const hasNonce = claim.nonce !== null && claim.nonce !== undefined;
  const version: 1 | 2 = material.drawVersion ?? (hasNonce ? 2 : 1);
  result.draw_version = version;
  let nonce: DrawNonce | null = null;
  if (version === 2) {
    if (!hasNonce || typeof claim.client_seed !== "string" || !Number.isSafeInteger(claim.nonce) || (claim.nonce as number) < 0) {
      add("draw_seed", false, "a version-2 draw without its nonce and client seed");
    } else {
      nonce = { version: 2, clientSeed: claim.client_seed, nonce: claim.nonce as number };
    }
  } else if (hasNonce) {
    add("draw_seed", false, "a version-1 draw (bound to the claim id) that carries a nonce");
  } else if (!uuidBytes(claim.claim_id)) {
    add("draw_seed", false, "claim_id is not a UUID");
  } else {
    nonce = { version: 1, claimId: claim.claim_id };
  }
  if (nonce && seed && seed.length === 32) {
    if (typeof claim.zone !== "string" || typeof claim.player !== "string") {
      add("draw_seed", false, "zone and player must be strings");
    } else {
      const ds = await drawSeed(seed, claim.zone, claim.player, nonce);
      result.draw_seed = toHex(ds);
      const what = nonce.version === 2 ? `client seed ${JSON.stringify(nonce.clientSeed)}, nonce ${nonce.nonce}` : `claim id ${claim.claim_id}`;
      add("draw_seed", true, `version ${version}: HMAC-SHA256(seed, zone ${claim.zone}, player ${claim.player}, ${what}) = ${result.draw_seed}`);
      if (table) {
        const draw = drawFrom(ds, table);
        result.start = draw.start.toString();
        result.expected_loot = draw.loot;
        const expected = canonicalJson(draw.loot);
        let recorded: string;
        try {
          recorded = canonicalJson(claim.loot);
        } catch {
          recorded = "<not JSON>";
        }
        const ok = expected === recorded;
        add("loot", ok, ok ? `start ${draw.start}; the draw gives ${describeLoot(draw.loot)}, as recorded` : `the draw gives ${expected}, the claim says ${recorded}`);
      } else {
        add("loot", null, "no loot table given: the loot is not replayed");
      }
    }
  } else if (nonce) {
    add("draw_seed", null, "the epoch's seed is not revealed yet");
    add("loot", null, "the epoch's seed is not revealed yet");
    result.pending = true;
  } else {
    add("loot", null, "no draw to replay");
  }

  // 5. The receipt.
  await checkReceipt(claim, material, add, result);

  result.problems = steps.filter((s) => s.ok === false).map((s) => `${s.step}: ${s.detail}`);
  const ran = (name: StepName) => steps.find((s) => s.step === name)?.ok;
  result.ok = result.problems.length === 0 && ran("loot") === true;
  return result;
}

async function checkReceipt(
  claim: VerifiableClaim,
  material: VerifyMaterial,
  add: (step: StepName, ok: boolean | null, detail: string) => void,
  result: ClaimVerification,
): Promise<void> {
  let leaf: Bytes;
  try {
    leaf = await leafHash(receiptBytes(claim as ReceiptFields));
  } catch (e) {
    add("receipt_leaf", false, e instanceof ReceiptFieldError ? `the claim's fields do not make a receipt: ${e.message}` : String(e));
    return;
  }
  result.leaf = toHex(leaf);
  const r = claim.receipt;
  if (!r) {
    add("receipt_leaf", null, `no receipt (a history entry); its leaf would be ${result.leaf}`);
    return;
  }
  const leafOk = typeof r.leaf === "string" && r.leaf.toLowerCase() === result.leaf;
  add("receipt_leaf", leafOk, leafOk ? `the claim's fields hash to the receipt's leaf ${result.leaf}` : `the claim's fields hash to ${result.leaf}, the receipt says ${r.leaf}`);
  const path = Array.isArray(r.path) ? r.path.map((h) => (typeof h === "string" ? fromHex(h) : null)) : [null];
  const root = typeof r.root === "string" ? fromHex(r.root) : null;
  if (!root || root.length !== 32 || path.some((h) => !h || h.length !== 32)) {
    add("receipt_path", false, "the receipt's root or path is not 32-byte hex hashes");
    return;
  }
  const got = await rootFromPath(leaf, r.leaf_index, r.leaf_count, path as Bytes[]);
  const pathOk = got !== null && equalBytes(got, root);
  add(
    "receipt_path",
    pathOk,
    pathOk
      ? `leaf ${r.leaf_index} of ${r.leaf_count}: its ${path.length}-hash path leads to the root ${r.root}`
      : got === null
        ? `a path of ${path.length} hashes does not fit leaf ${r.leaf_index} of ${r.leaf_count}`
        : `the path leads to ${toHex(got)}, not to the root ${r.root}`,
  );
  const keys = material.keys ? (Array.isArray(material.keys) ? material.keys : material.keys.keys) : null;
  if (!keys) {
    add("receipt_key", null, "no receipt keys given: the signature is not checked");
    return;
  }
  const key = keys.find((k) => k.key_id === r.key_id);
  const pub = key ? fromHex(key.public_key) : null;
  const keyOk = !!pub && pub.length === 32 && key!.algorithm === "Ed25519" && (await keyIdOf(pub)) === r.key_id;
  add("receipt_key", keyOk, keyOk ? `key ${r.key_id} (Ed25519${key!.current ? ", current" : ", retired"})` : `no Ed25519 key with id ${r.key_id} (whose SHA-256 starts so) is listed`);
  if (!keyOk) return;
  const sig = typeof r.signature === "string" ? fromHex(r.signature) : null;
  const verify = material.ed25519 ?? cachedWebCryptoEd25519;
  const sigOk = !!sig && sig.length === 64 && pathOk && (await verify(pub!, sig, batchMessage(r.key_id, root, r.leaf_count)));
  add("receipt_signature", sigOk, sigOk ? "the Ed25519 signature over the batch's root verifies" : "the signature does not verify over the batch's root and leaf count");
}

/** The claims of one statement share a root and its signature: each is checked once. */
const verifiedBatches = new Map<string, true>();
const cachedWebCryptoEd25519: Ed25519Verify = async (publicKey, signature, message) => {
  const k = `${toHex(publicKey)}:${toHex(signature)}:${toHex(message)}`;
  if (verifiedBatches.has(k)) return true;
  const ok = await webCryptoEd25519(publicKey, signature, message);
  if (ok) {
    if (verifiedBatches.size >= 10_000) verifiedBatches.delete(verifiedBatches.keys().next().value!);
    verifiedBatches.set(k, true);
  }
  return ok;
};

function describeLoot(loot: LootItem[]): string {
  return loot.map((l) => `${l.qty}× ${l.item} (${l.rarity})`).join(", ") || "nothing";
}

// ---- online: material fetched from Trove ---------------------------------------------------

/**
 * Verifies claims with what Trove publishes (zone epochs and revealed seeds, loot table
 * versions, receipt keys), fetched once and cached. A zone view is fetched again when a
 * claim's epoch is not revealed in the cached one.
 */
export class Verifier {
  private zones = new Map<string, Promise<ZoneView>>();
  private tables = new Map<string, Promise<TableView>>();
  private keys: Promise<ReceiptKeyList> | null = null;

  constructor(
    private readonly client: TroveClient,
    private readonly options: { ed25519?: Ed25519Verify } = {},
  ) {}

  async zone(zone: string, fresh = false): Promise<ZoneView> {
    let z = this.zones.get(zone);
    if (!z || fresh) {
      z = this.client.zone(zone);
      this.zones.set(zone, z);
      z.catch(() => this.zones.delete(zone));
    }
    return z;
  }

  async lootTable(name: string, version: number): Promise<TableView> {
    const k = `${name}\u0000${version}`;
    let t = this.tables.get(k);
    if (!t) {
      t = this.client.lootTable(name, { version });
      this.tables.set(k, t);
      t.catch(() => this.tables.delete(k));
    }
    return t;
  }

  async receiptKeys(): Promise<ReceiptKeyList> {
    if (!this.keys) {
      this.keys = this.client.receiptKeys();
      this.keys.catch(() => (this.keys = null));
    }
    return this.keys;
  }

  /** The seed and commitment of a zone's epoch (seed null until revealed). */
  async epoch(zone: string, epoch: number): Promise<{ seed: string | null; commitment: string | null }> {
    let view = await this.zone(zone);
    let e = view.epochs.find((x) => x.epoch === epoch);
    if (!e?.seed) {
      view = await this.zone(zone, true);
      e = view.epochs.find((x) => x.epoch === epoch);
    }
    return { seed: e?.seed ?? null, commitment: e?.seed_commitment ?? null };
  }

  async material(claim: VerifiableClaim): Promise<VerifyMaterial> {
    const [epoch, lootTable, keys] = await Promise.all([
      this.epoch(claim.zone, claim.seed_epoch),
      this.lootTable(claim.loot_table, claim.loot_table_version),
      this.receiptKeys(),
    ]);
    return { seed: epoch.seed, commitment: epoch.commitment, lootTable, keys, ed25519: this.options.ed25519 };
  }

  async verifyClaim(claim: VerifiableClaim): Promise<ClaimVerification> {
    return verifyClaim(claim, await this.material(claim));
  }

  /** Fetches and checks a revealed epoch's transcript (see `verifyTranscript`). */
  async verifyEpoch(zone: string, epoch: number, audit?: { answers: VerifiableClaim[]; player: string }): Promise<TranscriptVerification> {
    const [transcript, view, keys] = await Promise.all([this.client.transcript(zone, epoch), this.zone(zone, true), this.receiptKeys()]);
    const commitment = view.epochs.find((e) => e.epoch === epoch)?.seed_commitment ?? null;
    return verifyTranscript(transcript, {
      keys,
      commitment,
      lootTable: (name, version) => this.lootTable(name, version),
      ed25519: this.options.ed25519,
      ...(audit ?? {}),
    });
  }

  /** Every revealed epoch of a zone, each transcript checked and replayed. */
  async verifyZone(zone: string): Promise<{ zone: string; ok: boolean; epochs: TranscriptVerification[] }> {
    const view = await this.zone(zone, true);
    const epochs: TranscriptVerification[] = [];
    for (const e of view.epochs) if (e.seed) epochs.push(await this.verifyEpoch(zone, e.epoch));
    return { zone, ok: epochs.every((e) => e.ok), epochs };
  }
}

// ---- transcripts ---------------------------------------------------------------------------

export interface TranscriptVerification {
  ok: boolean;
  zone: string | null;
  epoch: number | null;
  claims: number;
  /** Claims whose loot was replayed from the seed and matched. */
  replayed: number;
  receipts_checked: number;
  problems: string[];
}

export interface TranscriptOptions {
  keys: ReceiptKeyList | PublicKey[];
  /** The epoch's commitment as published before its claims (the zone's `epochs`). */
  commitment?: string | null;
  /** Loot table versions for replaying each claim (omit to skip the replay). */
  lootTable?: (name: string, version: number) => Promise<LootTable> | LootTable;
  /** A player's kept claim answers: each must be signed and in the transcript, and every
   *  transcript entry in `player`'s name must be one of them or authorised by an admin. */
  answers?: VerifiableClaim[];
  player?: string;
  ed25519?: Ed25519Verify;
}

/**
 * Checks a transcript: the header's seed hashes to its commitment (and to the published
 * one), every line hashes to its leaf and belongs to the epoch, each player's nonces are
 * gapless from 0, every claim's loot replays from the seed, the trailer's count and digest
 * are the lines', its signature verifies; with `answers`, the player's receipts and the
 * transcript agree both ways.
 */
export async function verifyTranscript(t: Transcript, o: TranscriptOptions): Promise<TranscriptVerification> {
  const problems: string[] = [];
  const out: TranscriptVerification = { ok: false, zone: null, epoch: null, claims: 0, replayed: 0, receipts_checked: 0, problems };
  const h = t.header;
  if (!h) {
    problems.push("the transcript has no header");
    return out;
  }
  if (t.unreadable.length) problems.push(`unreadable lines: ${t.unreadable.join(", ")}`);
  if (h.transcript !== "trove/transcript/v1") problems.push(`unknown transcript format ${h.transcript}`);
  out.zone = h.zone;
  out.epoch = h.epoch;
  const seed = fromHex(h.seed);
  if (!seed || seed.length !== 32) problems.push("the header's seed is not 32 bytes of hex");
  else {
    const c = toHex(await sha256(seed));
    if (c !== h.seed_commitment) problems.push(`SHA-256 of the seed is ${c}, the header's commitment ${h.seed_commitment}`);
    if (o.commitment != null && c !== o.commitment) problems.push(`SHA-256 of the seed is ${c}, the published commitment ${o.commitment}`);
  }
  const version = h.draw_version === 1 || h.draw_version === 2 ? h.draw_version : null;
  if (!version) problems.push(`unknown draw version ${h.draw_version}`);

  const leaves: Bytes[] = [];
  const inTranscript = new Set<string>();
  const next = new Map<string, number>();
  const mine: TranscriptLine[] = [];
  for (const line of t.claims) {
    const id = line?.claim_id ?? "?";
    let leaf: Bytes;
    try {
      leaf = await leafHash(receiptBytes(line as ReceiptFields));
    } catch (e) {
      problems.push(`claim ${id}: ${e instanceof Error ? e.message : e}`);
      continue;
    }
    const hex = toHex(leaf);
    if (line.leaf !== hex) problems.push(`claim ${id} does not hash to its leaf`);
    if (line.zone !== h.zone || line.seed_epoch !== h.epoch) problems.push(`claim ${id} is of another zone or epoch`);
    if (line.nonce !== null && line.nonce !== undefined) {
      const want = next.get(line.player) ?? 0;
      if (line.nonce !== want) problems.push(`${line.player}'s nonce ${line.nonce} where ${want} was due`);
      next.set(line.player, line.nonce + 1);
    } else if (version === 2) {
      problems.push(`claim ${id} has no nonce in a version-2 epoch`);
    }
    if (o.lootTable && seed && seed.length === 32 && version) {
      const table = await o.lootTable(line.loot_table, line.loot_table_version);
      const v = await verifyClaim(line, { seed, lootTable: table, drawVersion: version });
      if (v.steps.find((s) => s.step === "loot")?.ok === true) out.replayed++;
      else problems.push(`claim ${id}: ${v.problems.join("; ") || "its loot was not replayed"}`);
    }
    leaves.push(leaf);
    inTranscript.add(hex);
    if (o.player !== undefined && line.player === o.player) mine.push(line);
    out.claims++;
  }

  const digest = await sha256(concat(transcriptDigestHead(h.zone, h.epoch), ...leaves));
  const tr = t.trailer;
  if (!tr) problems.push("the transcript has no trailer: it was cut off");
  else {
    if (tr.claims !== leaves.length || tr.claims !== t.claims.length) problems.push(`the trailer counts ${tr.claims} claims, the transcript has ${t.claims.length}`);
    if (tr.digest !== toHex(digest)) problems.push("the trailer's digest is not the transcript's");
    const keys = Array.isArray(o.keys) ? o.keys : o.keys.keys;
    const key = keys.find((k) => k.key_id === tr.key_id);
    const pub = key ? fromHex(key.public_key) : null;
    const sig = fromHex(tr.signature);
    const verify = o.ed25519 ?? webCryptoEd25519;
    const signed =
      !!pub && pub.length === 32 && (await keyIdOf(pub)) === tr.key_id && !!sig && sig.length === 64 &&
      (await verify(pub, sig, transcriptMessage(tr.key_id, digest, leaves.length)));
    if (!signed) problems.push("the transcript's signature does not verify");
  }

  if (o.answers) {
    const backed = new Set<string>();
    for (const a of o.answers) {
      if (a.zone !== h.zone || a.seed_epoch !== h.epoch) continue;
      out.receipts_checked++;
      const v = await verifyClaim(a, { keys: o.keys, ed25519: o.ed25519 });
      const receiptOk = v.steps.filter((s) => s.step.startsWith("receipt_")).every((s) => s.ok === true);
      if (!receiptOk) problems.push(`the receipt of claim ${a.claim_id} does not verify`);
      if (v.leaf && !inTranscript.has(v.leaf)) problems.push(`claim ${a.claim_id} (nonce ${a.nonce ?? "none"}) is missing from the transcript`);
      if (v.leaf) backed.add(v.leaf);
    }
    for (const line of mine) {
      if (!backed.has(line.leaf) && !String(line.authorised_by ?? "").startsWith("admin:")) {
        problems.push(`claim ${line.claim_id} in ${o.player}'s name has no receipt and no admin authorised it`);
      }
    }
  }
  out.ok = problems.length === 0;
  return out;
}
