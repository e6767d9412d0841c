import { describe, expect, it } from "vitest";
import { TrainRng } from "./rng.ts";

describe("TrainRng", () => {
  it("continues from a saved state exactly", () => {
    const a = TrainRng.fromSeed(3407);
    const before = [a.seed(), a.seed()];
    const b = TrainRng.fromState(JSON.parse(JSON.stringify(a.state())) as number[]);
    const after = [a.seed(), a.seed(), a.seed()];
    expect([b.seed(), b.seed(), b.seed()]).toEqual(after);
    expect(TrainRng.fromSeed(3407).seed()).toBe(before[0]);
    for (const s of [...before, ...after]) expect(s >= 0 && s <= 0x7fffffff).toBe(true);
    expect(new Set([...before, ...after]).size).toBe(5);
  });
});
