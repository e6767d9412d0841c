/**
 * Reads what `rl2048 check` and `rl2048 eval` are given: a `.py` file is the program itself;
 * anything else is a completion, and the strategy is extracted from it.
 */
import { readFileSync } from "node:fs";
import { extractStrategy, type Extraction } from "./extract.ts";

export function readStrategyFile(path: string): Extraction {
  const text = readFileSync(path, "utf8");
  return path.endsWith(".py") ? { ok: true, code: text } : extractStrategy(text);
}
