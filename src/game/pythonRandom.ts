/**
 * CPython's `random.Random`, bit for bit, for integer seeds.
 *
 * MT19937 seeded with `init_by_array` from the 32-bit words of |seed| (least significant
 * first, at least one word), as `random.Random(seed)` does for an int. On top of it the few
 * methods the game needs: `random()` (53 bits from two outputs), `getrandbits(k)`,
 * `randbelow(n)` (CPython's `_randbelow_with_getrandbits`, rejection sampling) and `choice`.
 */

const N = 624;
const M = 397;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;
const MATRIX_A = 0x9908b0df;

/** The 32-bit words of |seed|, least significant first; [0] for zero. */
export function seedKey(seed: number | bigint): Uint32Array {
  if (typeof seed === "number" && Number.isSafeInteger(seed)) {
    const n = Math.abs(seed);
    const high = Math.floor(n / 0x100000000);
    return high === 0 ? Uint32Array.of(n) : Uint32Array.of(n >>> 0, high);
  }
  let n = BigInt(seed);
  if (n < 0n) n = -n;
  const words: number[] = [];
  do {
    words.push(Number(n & 0xffffffffn));
    n >>= 32n;
  } while (n > 0n);
  return Uint32Array.from(words);
}

export class PythonRandom {
  private readonly mt = new Uint32Array(N);
  private index = N;

  constructor(seed: number | bigint = 0) {
    this.initByArray(seedKey(seed));
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1]!;
      mt[i] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + i) >>> 0;
    }
    this.index = N;
  }

  private initByArray(key: Uint32Array): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1]!;
      mt[i] = ((mt[i]! ^ Math.imul(prev ^ (prev >>> 30), 1664525)) + key[j]! + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1]!;
      mt[i] = ((mt[i]! ^ Math.imul(prev ^ (prev >>> 30), 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
    }
    mt[0] = UPPER_MASK;
  }

  private twist(): void {
    const mt = this.mt;
    const mix = (a: number, b: number, c: number) => {
      const y = (mt[a]! & UPPER_MASK) | (mt[b]! & LOWER_MASK);
      mt[a] = mt[c]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    };
    let kk = 0;
    for (; kk < N - M; kk++) mix(kk, kk + 1, kk + M);
    for (; kk < N - 1; kk++) mix(kk, kk + 1, kk + M - N);
    mix(N - 1, 0, M - 1);
    this.index = 0;
  }

  /** The next 32-bit output of the generator (`genrand_uint32`). */
  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.mt[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** A float in [0, 1) with 53 random bits, as `random.random()`. */
  random(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** `random.getrandbits(k)` for 0 <= k <= 32. */
  getrandbits(k: number): number {
    if (!Number.isInteger(k) || k < 0 || k > 32) {
      throw new RangeError(`getrandbits supports 0 to 32 bits, got ${k}`);
    }
    if (k === 0) return 0;
    return this.nextUint32() >>> (32 - k);
  }

  /** A uniform integer in [0, n), as CPython's `_randbelow_with_getrandbits` (1 <= n < 2^32). */
  randbelow(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n >= 0x100000000) {
      throw new RangeError(`randbelow needs an integer from 1 to 2^32 - 1, got ${n}`);
    }
    const k = 32 - Math.clz32(n); // n.bit_length()
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** A uniformly chosen element, as `random.choice(seq)`. */
  choice<T>(seq: ArrayLike<T>): T {
    if (seq.length === 0) throw new RangeError("cannot choose from an empty sequence");
    return seq[this.randbelow(seq.length)]!;
  }
}
