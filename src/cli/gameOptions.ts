/**
 * The game options every command shares (--size --target --p4 --seed --keys): help text and
 * defaults come from the game's schema; bad values become one UserError line naming the flag.
 */
import { Option, type Command } from "commander";
import { gameOptionsSchema, KEY_PRESET_NAMES, type GameOptions } from "../game/index.ts";
import { UserError } from "./userError.ts";

const DEFAULTS = gameOptionsSchema.parse({});

/** Adds the game options to a command, with the schema's defaults. */
export function addGameOptions(cmd: Command): Command {
  const option = (flags: string, description: string, value: unknown) =>
    cmd.addOption(new Option(flags, description).default(value));
  option("--size <n>", "board size (N x N), 2 to 16", DEFAULTS.size);
  option("--target <tile>", "tile that wins the game, a power of two", DEFAULTS.target);
  option("--p4 <p>", "probability that a new tile is a 4", DEFAULTS.p4);
  option("--seed <n>", "integer seed of the game's random numbers", DEFAULTS.seed);
  option("--keys <preset>", `move keys: ${KEY_PRESET_NAMES.join(" or ")}`, DEFAULTS.keys);
  return cmd;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

function toNumber(value: unknown): unknown {
  if (typeof value !== "string") return value;
  return NUMBER.test(value.trim()) ? Number(value.trim()) : value;
}

function toSeed(value: unknown): unknown {
  if (typeof value !== "string") return value;
  if (!INTEGER.test(value.trim())) return value;
  const n = BigInt(value.trim());
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(n)
    : n;
}

/**
 * Validates the game options commander parsed (strings, or values given directly) and returns
 * them with defaults filled in; throws a one-line UserError such as
 * "--size must be an integer from 2 to 16, got 1".
 */
export function parseGameOptions(opts: Record<string, unknown>): GameOptions {
  const raw = {
    size: toNumber(opts.size),
    target: toNumber(opts.target),
    p4: toNumber(opts.p4),
    seed: toSeed(opts.seed),
    keys: opts.keys,
  };
  const result = gameOptionsSchema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const name = String(issue.path[0]);
  const given = opts[name];
  throw new UserError(`--${name} ${issue.message}, got ${String(given)}`);
}
