/**
 * function_works (the seed's): +1 a function that passes the checks and loads; -2 no
 * function, or it does not parse; -0.5 it parses but cannot be loaded (a check rejected it,
 * or running its module failed).
 */
import { parsed, type RewardInput } from "./types.ts";

export function functionWorks(input: RewardInput): number {
  if (!parsed(input)) return -2;
  return input.report.loaded ? 1 : -0.5;
}
