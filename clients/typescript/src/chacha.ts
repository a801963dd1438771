/**
 * ChaCha20 as Trove's draws use it: `rand_chacha`'s `ChaCha20Rng::from_seed(seed)`, i.e. the
 * original ChaCha20 block function (20 rounds) keyed by the 32-byte seed, with a 64-bit block
 * counter from 0 (state words 12-13) and stream 0 (words 14-15). `next_u64` takes the next
 * two 32-bit output words, low word first. WebCrypto has no ChaCha20, so it is here, in the
 * client, checked against RFC 8439's keystream vector (which, at counter < 2^32 and a zero
 * nonce, is the same function).
 */

const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];

function rotl(x: number, n: number): number {
  return (x << n) | (x >>> (32 - n));
}

/** One 64-byte block (16 little-endian words) for `key` (8 words) at block `counter`. */
export function chachaBlock(key: Uint32Array, counter: bigint, stream: bigint = 0n, rounds = 20): Uint32Array {
  const s = new Uint32Array(16);
  s.set(SIGMA, 0);
  s.set(key, 4);
  s[12] = Number(counter & 0xffffffffn);
  s[13] = Number((counter >> 32n) & 0xffffffffn);
  s[14] = Number(stream & 0xffffffffn);
  s[15] = Number((stream >> 32n) & 0xffffffffn);
  const x = Int32Array.from(s);
  const qr = (a: number, b: number, c: number, d: number) => {
    x[a] = (x[a]! + x[b]!) | 0;
    x[d] = rotl(x[d]! ^ x[a]!, 16);
    x[c] = (x[c]! + x[d]!) | 0;
    x[b] = rotl(x[b]! ^ x[c]!, 12);
    x[a] = (x[a]! + x[b]!) | 0;
    x[d] = rotl(x[d]! ^ x[a]!, 8);
    x[c] = (x[c]! + x[d]!) | 0;
    x[b] = rotl(x[b]! ^ x[c]!, 7);
  };
  for (let i = 0; i < rounds; i += 2) {
    qr(0, 4, 8, 12);
    qr(1, 5, 9, 13);
    qr(2, 6, 10, 14);
    qr(3, 7, 11, 15);
    qr(0, 5, 10, 15);
    qr(1, 6, 11, 12);
    qr(2, 7, 8, 13);
    qr(3, 4, 9, 14);
  }
  const out = new Uint32Array(16);
  for (let i = 0; i < 16; i++) out[i] = (x[i]! + s[i]!) >>> 0;
  return out;
}

/** `ChaCha20Rng` from a 32-byte seed: a stream of u32 words, read as u64s low word first. */
export class ChaCha20Rng {
  private readonly key: Uint32Array;
  private counter = 0n;
  private block: Uint32Array = new Uint32Array(16);
  private index = 16;

  constructor(seed: Uint8Array) {
    if (seed.length !== 32) throw new RangeError("a ChaCha20 seed is 32 bytes");
    const v = new DataView(seed.buffer, seed.byteOffset, 32);
    this.key = new Uint32Array(8);
    for (let i = 0; i < 8; i++) this.key[i] = v.getUint32(4 * i, true);
  }

  nextU32(): number {
    if (this.index >= 16) {
      this.block = chachaBlock(this.key, this.counter);
      this.counter += 1n;
      this.index = 0;
    }
    return this.block[this.index++]!;
  }

  /** `RngCore::next_u64`: two words, low first (the block boundary never splits one, since
   *  every draw reads u64s only and a block holds 16 words). */
  nextU64(): bigint {
    const lo = this.nextU32();
    const hi = this.nextU32();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** A copy at the same place in the stream. */
  clone(): ChaCha20Rng {
    const c = Object.create(ChaCha20Rng.prototype) as ChaCha20Rng;
    Object.assign(c, { key: this.key, counter: this.counter, block: this.block.slice(), index: this.index });
    return c;
  }
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * Trove's `below(n)`: a uniform integer in `0..n` by rejection sampling on `next_u64`: a draw
 * `x > u64::MAX - (2^64 mod n)` is redrawn, else `x mod n`.
 */
export function below(rng: { nextU64(): bigint }, n: bigint): bigint {
  if (n < 1n) n = 1n;
  const zone = U64_MAX - ((U64_MAX - n + 1n) % n);
  for (;;) {
    const x = rng.nextU64();
    if (x <= zone) return x % n;
  }
}
