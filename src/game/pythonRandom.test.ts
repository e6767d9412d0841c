import { describe, expect, it } from "vitest";
import { PythonRandom, seedKey } from "./pythonRandom.ts";
import { runReference } from "./reference/runReference.ts";

interface RngTrace {
  random: number[];
  bits: [number, number][];
  below: [number, number][];
}

const SEEDS: (number | bigint)[] = [
  0,
  1,
  -1,
  42,
  3407,
  -123456789,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 32 + 1,
  -(2 ** 40) - 3,
  Number.MAX_SAFE_INTEGER,
  2n ** 64n + 12345n,
  -(10n ** 30n),
  2n ** 200n - 1n,
];

describe("PythonRandom", () => {
  it("splits |seed| into 32-bit words, least significant first", () => {
    expect([...seedKey(0)]).toEqual([0]);
    expect([...seedKey(-5)]).toEqual([5]);
    expect([...seedKey(2 ** 32 + 7)]).toEqual([7, 1]);
  });

  it("matches CPython's random.Random(seed) for random, getrandbits and choice", () => {
    const expected = runReference<RngTrace[]>({ op: "rng", seeds: SEEDS, count: 700 });
    SEEDS.forEach((seed, i) => {
      const rng = new PythonRandom(seed);
      const want = expected[i]!;
      const got: RngTrace = {
        random: want.random.map(() => rng.random()),
        bits: want.bits.map(([k]) => [k, rng.getrandbits(k)]),
        below: want.below.map(([n]) => [n, rng.randbelow(n)]),
      };
      expect(got, `seed ${seed}`).toEqual(want);
    });
  });

  it("chooses from a sequence and refuses an empty one", () => {
    const rng = new PythonRandom(1);
    expect(["a", "b", "c"]).toContain(rng.choice(["a", "b", "c"]));
    expect(() => rng.choice([])).toThrow(RangeError);
  });
});
