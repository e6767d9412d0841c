/**
 * The trainer's own random numbers (game seeds, engine sampling seeds), from pure-rand's
 * xoroshiro128+, whose state is saved in each checkpoint so a resumed run draws the same.
 */
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus, xoroshiro128plusFromState } from "pure-rand/generator/xoroshiro128plus";

export class TrainRng {
  private constructor(private generator: ReturnType<typeof xoroshiro128plus>) {}

  static fromSeed(seed: number): TrainRng {
    return new TrainRng(xoroshiro128plus(seed));
  }

  static fromState(state: readonly number[]): TrainRng {
    return new TrainRng(xoroshiro128plusFromState(state));
  }

  /** A non-negative 31-bit integer, for game and sampling seeds. */
  seed(): number {
    return uniformInt(this.generator, 0, 0x7fffffff);
  }

  state(): number[] {
    return [...this.generator.getState()];
  }
}
