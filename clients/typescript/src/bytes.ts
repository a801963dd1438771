/** Byte helpers and the hashes and signatures the verifier uses (SHA-256, HMAC-SHA256, Ed25519). */

export type Bytes = Uint8Array;

const HEX = "0123456789abcdef";

export function toHex(b: Bytes): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX[b[i]! >> 4]! + HEX[b[i]! & 15]!;
  return s;
}

/** Bytes of a hex string; null when it is not hex (odd length or another character). */
export function fromHex(s: string): Bytes | null {
  if (typeof s !== "string" || s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return null;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const encoder = new TextEncoder();
export const utf8 = (s: string): Bytes => encoder.encode(s);

export function concat(...parts: Bytes[]): Bytes {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equalBytes(a: Bytes, b: Bytes): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** 8 bytes, big-endian two's complement. */
export function i64be(v: bigint | number): Bytes {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigInt64(0, BigInt(v));
  return out;
}

/** 8 bytes, big-endian unsigned. */
export function u64be(v: bigint | number): Bytes {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(v)));
  return out;
}

export function u32be(v: number): Bytes {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, v >>> 0);
  return out;
}

/** The 16 bytes of a UUID in its hyphenated (or plain) hex form; null when it is not one. */
export function uuidBytes(s: string): Bytes | null {
  if (typeof s !== "string") return null;
  const hex = s.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return null;
  if (s.includes("-") && !/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s)) return null;
  return fromHex(hex);
}

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new Error("WebCrypto (crypto.subtle) is not available: a secure context (https) is needed in browsers");
  return s;
}

/** WebCrypto wants an ArrayBuffer-backed view; copies when the view is of a larger buffer. */
function buf(b: Bytes): ArrayBuffer {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer
    ? b.buffer
    : (b.slice().buffer as ArrayBuffer);
}

// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) in plain code: a receipt check hashes a
// dozen small messages, where each WebCrypto call costs a round trip to its thread pool, and
// `crypto.subtle` is missing altogether on plain-http pages. (Cross-checked against
// WebCrypto in the tests.)
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** SHA-256 of `data`, synchronously. */
export function sha256Sync(data: Bytes): Bytes {
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const bitLen = data.length * 8;
  const padded = new Uint8Array(((data.length + 9 + 63) >> 6) << 6);
  padded.set(data);
  padded[data.length] = 0x80;
  const dv = new DataView(padded.buffer);
  dv.setUint32(padded.length - 8, Math.floor(bitLen / 0x100000000));
  dv.setUint32(padded.length - 4, bitLen >>> 0);
  const w = new Uint32Array(64);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = dv.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15]!;
      const b = w[i - 2]!;
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) >>> 0;
    }
    let a = h[0]!, b = h[1]!, c = h[2]!, d = h[3]!, e = h[4]!, f = h[5]!, g = h[6]!, hh = h[7]!;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[i]! + w[i]!) >>> 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) >>> 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    h[0] = (h[0]! + a) >>> 0;
    h[1] = (h[1]! + b) >>> 0;
    h[2] = (h[2]! + c) >>> 0;
    h[3] = (h[3]! + d) >>> 0;
    h[4] = (h[4]! + e) >>> 0;
    h[5] = (h[5]! + f) >>> 0;
    h[6] = (h[6]! + g) >>> 0;
    h[7] = (h[7]! + hh) >>> 0;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) ov.setUint32(4 * i, h[i]!);
  return out;
}

/** HMAC-SHA256, synchronously. */
export function hmacSha256Sync(key: Bytes, msg: Bytes): Bytes {
  let k = key.length > 64 ? sha256Sync(key) : key;
  const block = new Uint8Array(64);
  block.set(k);
  const ipad = new Uint8Array(64);
  const opad = new Uint8Array(64);
  for (let i = 0; i < 64; i++) {
    ipad[i] = block[i]! ^ 0x36;
    opad[i] = block[i]! ^ 0x5c;
  }
  k = sha256Sync(concat(ipad, msg));
  return sha256Sync(concat(opad, k));
}

export async function sha256(data: Bytes): Promise<Bytes> {
  return sha256Sync(data);
}

export async function hmacSha256(key: Bytes, msg: Bytes): Promise<Bytes> {
  return hmacSha256Sync(key, msg);
}

/** SHA-256 by WebCrypto (for cross-checks). */
export async function webCryptoSha256(data: Bytes): Promise<Bytes> {
  return new Uint8Array(await subtle().digest("SHA-256", buf(data)));
}

/** HMAC-SHA256 by WebCrypto (for cross-checks). */
export async function webCryptoHmacSha256(key: Bytes, msg: Bytes): Promise<Bytes> {
  const k = await subtle().importKey("raw", buf(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle().sign("HMAC", k, buf(msg)));
}

/** Checks an Ed25519 signature (WebCrypto: Node 20+, Chromium 137+, Firefox 129+, Safari 17+). */
export type Ed25519Verify = (publicKey: Bytes, signature: Bytes, message: Bytes) => Promise<boolean>;

/** Imported public keys by hex (a deployment has one or two). */
const importedKeys = new Map<string, Promise<CryptoKey | null>>();

export const webCryptoEd25519: Ed25519Verify = async (publicKey, signature, message) => {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const hex = toHex(publicKey);
  let imported = importedKeys.get(hex);
  if (!imported) {
    imported = subtle()
      .importKey("raw", buf(publicKey), { name: "Ed25519" }, false, ["verify"])
      .catch((e: unknown) => {
        importedKeys.delete(hex);
        if (e instanceof Error && /not supported|unrecognized|algorithm/i.test(e.message)) {
          throw new Error(`this platform's WebCrypto has no Ed25519 (${e.message}); pass { ed25519 } to the verifier`);
        }
        return null; // not a valid point
      });
    if (importedKeys.size > 64) importedKeys.clear();
    importedKeys.set(hex, imported);
  }
  const key = await imported;
  if (!key) return false;
  return subtle().verify({ name: "Ed25519" }, key, buf(signature), buf(message));
};
