/**
 * `rl2048 model tiny`: builds (or finds in the cache) the tiny policy, a small gpt-oss
 * warm-started on the strategy corpus, and prints its folder; `--out` copies it there.
 */
import { cpSync, existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import cliProgress from "cli-progress";
import { Command } from "commander";
import { z } from "zod";
import { KEY_PRESET_NAMES, type KeyPreset } from "../game/keys.ts";
import { TinyPolicyError, tinyPolicy } from "../policy/tinyPolicy.ts";
import { strategyPrompt } from "../train/prompt.ts";
import { parseOptions, UserError } from "./userError.ts";

const Options = z.object({
  seed: z.coerce.number().int().nonnegative(),
  keys: z.enum(KEY_PRESET_NAMES as [KeyPreset, ...KeyPreset[]]),
  out: z.string().min(1).optional(),
  python: z.string().min(1).optional(),
});

export function modelTinyCommand(): Command {
  return new Command("tiny")
    .description(
      "Build the tiny policy (corpus, tokenizer, gpt-oss with random weights, supervised warm start), cached",
    )
    .option("--seed <n>", "seed of the corpus, the weights and the warm start", "0")
    .option(
      "--keys <preset>",
      `move keys the policy answers with: ${KEY_PRESET_NAMES.join(", ")}`,
      "wasd",
    )
    .option("--out <dir>", "also copy the folder here (must not exist)")
    .option("--python <path>", "Python with the engine (default: RL2048_PYTHON, else .venv)")
    .action(async (raw: Record<string, unknown>) => {
      const { seed, keys, out, python } = parseOptions(Options, raw);
      if (out && existsSync(out)) throw new UserError(`--out: ${out} already exists`);
      const bar = process.stderr.isTTY
        ? new cliProgress.SingleBar(
            { format: "tiny policy |{bar}| step {value}/{total} loss {loss} {duration}s" },
            cliProgress.Presets.shades_classic,
          )
        : null;
      let folder: string;
      try {
        folder = await tinyPolicy(
          { seed, keys, prompt: strategyPrompt(keys) },
          {
            python,
            onProgress: (p) => {
              if (p.step === undefined || p.steps === undefined) return;
              if (!bar) console.error(`sft step ${p.step}/${p.steps} loss ${p.loss}`);
              else if (p.step <= 1) bar.start(p.steps, p.step, { loss: p.loss });
              else bar.update(p.step, { loss: p.loss });
            },
          },
        );
      } catch (err) {
        if (err instanceof TinyPolicyError) throw new UserError(err.message);
        throw err;
      } finally {
        bar?.stop();
      }
      const summary = JSON.parse(readFileSync(join(folder, "tiny_policy.json"), "utf8")) as Record<
        string,
        unknown
      >;
      if (out) cpSync(folder, resolve(out), { recursive: true });
      console.log(out ? resolve(out) : folder);
      console.error(
        `params ${String(summary.params)}, ${String(summary.steps)} warm-start steps, final loss ${Number(summary.final_loss).toFixed(3)}, built in ${String(summary.seconds)}s`,
      );
    });
}
