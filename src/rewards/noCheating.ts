/**
 * no_cheating (the seed's, with names too): +1 only allowed imports and names; -20 a
 * forbidden or non-standard import, or a forbidden name; -1 no function (a syntax error is
 * not cheating, it just leaves no function).
 */
import { parsed, type RewardInput } from "./types.ts";

const CHEATING = new Set(["forbidden_import", "non_stdlib_import", "forbidden_name"]);

export function noCheating(input: RewardInput): number {
  if (!parsed(input)) return -1;
  return input.report.findings.some((f) => CHEATING.has(f.category)) ? -20 : 1;
}
