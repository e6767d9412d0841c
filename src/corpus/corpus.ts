/**
 * The strategy corpus: seeded Python programs for 2048 from four families of very different
 * quality, each written the way a model answers the seed's prompt (a fenced `python` block
 * holding `def strategy(board):` with every helper inside it).
 */
import { Rng } from "./random.ts";
import type { MoveKeys } from "./python.ts";
import type { Program } from "./families/program.ts";
import { orderProgram } from "./families/order.ts";
import { greedyProgram } from "./families/greedy.ts";
import { searchProgram } from "./families/search.ts";
import { weakProgram } from "./families/weak.ts";

export const FAMILIES = ["order", "greedy", "search", "weak"] as const;
export type Family = (typeof FAMILIES)[number];

/** How often each family is drawn. */
export const DEFAULT_MIX: Readonly<Record<Family, number>> = {
  order: 0.25,
  greedy: 0.35,
  search: 0.2,
  weak: 0.2,
};

const GENERATORS: Record<Family, (rng: Rng, keys: MoveKeys) => Program> = {
  order: orderProgram,
  greedy: greedyProgram,
  search: searchProgram,
  weak: weakProgram,
};

export interface CorpusRecord {
  family: Family;
  params: Record<string, unknown>;
  /** The answer as the model writes it: a fenced python block. */
  text: string;
}

export interface CorpusOptions {
  n: number;
  seed: number;
  keys: MoveKeys;
  mix?: Readonly<Record<Family, number>>;
  /** Only this family (for the quality report). */
  family?: Family;
}

/** The answer text for a program. */
export function answerText(code: string): string {
  return "```python\n" + code + "```";
}

/** One program of a family, from its own seed. */
export function generateProgram(family: Family, seed: number, keys: MoveKeys): CorpusRecord {
  const { params, code } = GENERATORS[family](new Rng(seed), keys);
  return { family, params, text: answerText(code) };
}

/**
 * `n` records. Record i depends only on the seed and i, so a longer corpus starts with the
 * records of a shorter one.
 */
export function generateCorpus(options: CorpusOptions): CorpusRecord[] {
  const master = new Rng(options.seed);
  const records: CorpusRecord[] = [];
  for (let i = 0; i < options.n; i++) {
    const family = options.family ?? master.weighted(options.mix ?? DEFAULT_MIX);
    const seed = master.int(0, 0x7fffffff);
    records.push(generateProgram(family, seed, options.keys));
  }
  return records;
}
