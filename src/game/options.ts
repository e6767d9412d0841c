/**
 * Game options: one schema holds every default (6x6, target 2048, a 4 one time in ten,
 * seed 0, bepo keys). Config files, the CLI and `new Game()` all go through it.
 */
import { z } from "zod";
import { KEY_PRESET_NAMES, type KeyPreset } from "./keys.ts";

export const MAX_TARGET = 2 ** 30;

const isPowerOfTwo = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

export const gameOptionsSchema = z.object({
  size: z
    .number({ error: "must be an integer from 2 to 16" })
    .int({ error: "must be an integer from 2 to 16" })
    .min(2, { error: "must be an integer from 2 to 16" })
    .max(16, { error: "must be an integer from 2 to 16" })
    .default(6),
  target: z
    .number({ error: "must be a power of two from 4 to 2^30" })
    .refine((t) => t >= 4 && t <= MAX_TARGET && isPowerOfTwo(t), {
      error: "must be a power of two from 4 to 2^30",
    })
    .default(2048),
  p4: z
    .number({ error: "must be a probability from 0 to 1" })
    .min(0, { error: "must be a probability from 0 to 1" })
    .max(1, { error: "must be a probability from 0 to 1" })
    .default(0.1),
  seed: z
    .union([z.number().refine(Number.isInteger, { error: "must be an integer" }), z.bigint()], {
      error: "must be an integer",
    })
    .default(0),
  keys: z
    .enum(KEY_PRESET_NAMES as [KeyPreset, ...KeyPreset[]], {
      error: `must be one of ${KEY_PRESET_NAMES.join(", ")}`,
    })
    .default("bepo"),
});

export type GameOptions = z.infer<typeof gameOptionsSchema>;
