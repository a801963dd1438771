/**
 * Signed receipts (README "Provably fair draws", `src/receipts.rs`): the byte-exact receipt
 * of a claim, its RFC 6962 Merkle leaf, the inclusion path up to the signed root, and the
 * signed messages of receipt batches and transcripts.
 */
import { concat, i64be, sha256, u32be, u64be, utf8, uuidBytes, type Bytes } from "./bytes.js";

/** The fields a receipt vouches for, as a claim answer (or transcript line) carries them. */
export interface ReceiptFields {
  zone: string;
  seed_epoch: number;
  player: string;
  nonce?: number | null;
  client_seed?: string | null;
  claim_id: string;
  chest_id: number;
  loot_table: string;
  loot_table_version: number;
  loot: unknown;
  opened_at: string;
  authorised_by?: string | null;
}

const RECEIPT_DOMAIN = "trove/receipt/v1";
const BATCH_DOMAIN = "trove/receipt-batch/v1";
export const TRANSCRIPT_DOMAIN = "trove/transcript/v1";

function field(b: Bytes): Bytes {
  return concat(u32be(b.length), b);
}

/** `opened_at` (RFC 3339) as microseconds since 1970, as chrono's `timestamp_micros` gives it
 *  (digits past the sixth are dropped, rounding towards the past). Null when unreadable. */
export function timestampMicros(s: string): bigint | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$/.exec(s);
  if (!m) return null;
  const [, y, mo, d, h, mi, se, frac = "", tz] = m;
  const secs = Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +se!) / 1000;
  if (!Number.isFinite(secs)) return null;
  let offset = 0;
  if (tz !== "Z" && tz !== "z") {
    const sign = tz!.startsWith("-") ? -1 : 1;
    offset = sign * (+tz!.slice(1, 3) * 3600 + +tz!.slice(4, 6) * 60);
  }
  // Sub-microsecond digits: floor (towards the past), as timestamp_micros does.
  const micros = BigInt((frac + "000000").slice(0, 6));
  return BigInt(secs - offset) * 1_000_000n + micros;
}

/** UTF-8 bytewise order, as Rust sorts `String` keys. */
function compareUtf8(a: string, b: string): number {
  const x = utf8(a);
  const y = utf8(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** Compact JSON with every object's keys sorted bytewise (serde_json's form of the loot). */
export function canonicalJson(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  switch (typeof v) {
    case "string":
      return JSON.stringify(v);
    case "number":
      if (!Number.isFinite(v)) throw new TypeError("JSON has no non-finite numbers");
      return JSON.stringify(v);
    case "boolean":
      return v ? "true" : "false";
    case "object": {
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort(compareUtf8);
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")}}`;
    }
    default:
      throw new TypeError(`not JSON: ${typeof v}`);
  }
}

/** A problem that keeps a receipt from being built (a field of the wrong type). */
export class ReceiptFieldError extends Error {}

function int(v: unknown, name: string): bigint {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new ReceiptFieldError(`${name} is not an integer`);
  return BigInt(v);
}

function str(v: unknown, name: string): string {
  if (typeof v !== "string") throw new ReceiptFieldError(`${name} is not a string`);
  return v;
}

function optStr(v: unknown, name: string): string {
  if (v === null || v === undefined) return "";
  return str(v, name);
}

/** The receipt's canonical bytes (README: `receipt = field(b"trove/receipt/v1") ‖ ...`). */
export function receiptBytes(f: ReceiptFields): Bytes {
  const claimId = uuidBytes(str(f.claim_id, "claim_id"));
  if (!claimId) throw new ReceiptFieldError("claim_id is not a UUID");
  const openedAt = timestampMicros(str(f.opened_at, "opened_at"));
  if (openedAt === null) throw new ReceiptFieldError("opened_at is not an RFC 3339 time");
  const nonce = f.nonce === null || f.nonce === undefined ? new Uint8Array(0) : i64be(int(f.nonce, "nonce"));
  return concat(
    field(utf8(RECEIPT_DOMAIN)),
    field(utf8(str(f.zone, "zone"))),
    field(i64be(int(f.seed_epoch, "seed_epoch"))),
    field(utf8(str(f.player, "player"))),
    field(nonce),
    field(utf8(optStr(f.client_seed, "client_seed"))),
    field(claimId),
    field(i64be(int(f.chest_id, "chest_id"))),
    field(utf8(str(f.loot_table, "loot_table"))),
    field(i64be(int(f.loot_table_version, "loot_table_version"))),
    field(utf8(canonicalJson(f.loot))),
    field(i64be(openedAt)),
    field(utf8(optStr(f.authorised_by, "authorised_by"))),
  );
}

/** `SHA-256(0x00 ‖ receipt)`. */
export async function leafHash(receipt: Bytes): Promise<Bytes> {
  return sha256(concat(Uint8Array.of(0), receipt));
}

/** `SHA-256(0x01 ‖ left ‖ right)`. */
export async function nodeHash(left: Bytes, right: Bytes): Promise<Bytes> {
  return sha256(concat(Uint8Array.of(1), left, right));
}

/** Where RFC 6962 splits a tree of `n >= 2` leaves: the largest power of two below `n`. */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The root a leaf and its inclusion path (siblings from the leaf up) lead to; null when the
 *  path does not fit a tree of `count` leaves. */
export async function rootFromPath(leaf: Bytes, index: number, count: number, path: Bytes[]): Promise<Bytes | null> {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(count) || index < 0 || index >= count) return null;
  const sides: boolean[] = []; // true: the leaf is in the left part at that level (top down)
  let i = index;
  let n = count;
  while (n > 1) {
    const k = split(n);
    if (i < k) {
      sides.push(true);
      n = k;
    } else {
      sides.push(false);
      i -= k;
      n -= k;
    }
  }
  if (sides.length !== path.length) return null;
  let hash = leaf;
  for (let level = 0; level < path.length; level++) {
    const left = sides[sides.length - 1 - level]!;
    const sibling = path[level]!;
    hash = left ? await nodeHash(hash, sibling) : await nodeHash(sibling, hash);
  }
  return hash;
}

/** The root over `leaves` (at least one). */
export async function merkleRoot(leaves: Bytes[]): Promise<Bytes> {
  if (leaves.length === 0) return sha256(new Uint8Array(0));
  if (leaves.length === 1) return leaves[0]!;
  const k = split(leaves.length);
  return nodeHash(await merkleRoot(leaves.slice(0, k)), await merkleRoot(leaves.slice(k)));
}

function signedMessage(domain: string, keyId: string, hash: Bytes, count: number): Bytes {
  return concat(utf8(domain), Uint8Array.of(0), utf8(keyId), Uint8Array.of(0), hash, u64be(count));
}

/** What Trove signs for a batch of receipts: domain ‖ 0 ‖ key id ‖ 0 ‖ root ‖ u64 leaf count. */
export function batchMessage(keyId: string, root: Bytes, count: number): Bytes {
  return signedMessage(BATCH_DOMAIN, keyId, root, count);
}

/** What Trove signs for a transcript: domain ‖ 0 ‖ key id ‖ 0 ‖ digest ‖ u64 claims. */
export function transcriptMessage(keyId: string, digest: Bytes, count: number): Bytes {
  return signedMessage(TRANSCRIPT_DOMAIN, keyId, digest, count);
}

/** The head of a transcript digest: domain ‖ 0 ‖ zone ‖ 0 ‖ i64 epoch (the leaves follow). */
export function transcriptDigestHead(zone: string, epoch: number): Bytes {
  return concat(utf8(TRANSCRIPT_DOMAIN), Uint8Array.of(0), utf8(zone), Uint8Array.of(0), i64be(epoch));
}

/** A key's id: the first 8 bytes of SHA-256 of its public key, hex. */
export async function keyIdOf(publicKey: Bytes): Promise<string> {
  const h = await sha256(publicKey);
  let s = "";
  for (let i = 0; i < 8; i++) s += h[i]!.toString(16).padStart(2, "0");
  return s;
}
