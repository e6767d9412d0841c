import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { addGameOptions, parseGameOptions } from "./gameOptions.ts";
import { UserError } from "./userError.ts";

function parse(args: string[]) {
  const cmd = addGameOptions(new Command("x")).exitOverride();
  cmd.parse(args, { from: "user" });
  return parseGameOptions(cmd.opts());
}

describe("game options", () => {
  it("fills in the schema's defaults", () => {
    expect(parse([])).toEqual({ size: 6, target: 2048, p4: 0.1, seed: 0, keys: "bepo" });
  });

  it("parses every flag", () => {
    const o = parse([
      "--size",
      "4",
      "--target",
      "256",
      "--p4",
      "0",
      "--seed",
      "-7",
      "--keys",
      "wasd",
    ]);
    expect(o).toEqual({ size: 4, target: 256, p4: 0, seed: -7, keys: "wasd" });
  });

  it("keeps seeds beyond 2^53 exact as bigint", () => {
    expect(parse(["--seed", "123456789012345678901234567890"]).seed).toBe(
      123456789012345678901234567890n,
    );
  });

  it.each([
    [["--size", "1"], "--size must be an integer from 2 to 16, got 1"],
    [["--size", "abc"], "--size must be an integer from 2 to 16, got abc"],
    [["--target", "3"], "--target must be a power of two from 4 to 2^30, got 3"],
    [["--p4", "2"], "--p4 must be a probability from 0 to 1, got 2"],
    [["--seed", "1.5"], "--seed must be an integer, got 1.5"],
    [["--keys", "azerty"], "--keys must be one of bepo, wasd, got azerty"],
  ])("rejects %j with one clear line", (args, message) => {
    expect(() => parse(args)).toThrow(new UserError(message));
  });
});
