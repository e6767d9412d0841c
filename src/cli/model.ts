/**
 * `rl2048 model`: model folders. `model init` writes a gpt-oss checkpoint with random weights
 * in the published layout (engine/rl2048_engine/init_model.py), with a progress bar on a
 * terminal. Other subcommands join this parent command.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { resolve } from "node:path";
import cliProgress from "cli-progress";
import { Command } from "commander";
import { z } from "zod";
import { InitModelError, PRESETS, initModel } from "../model/initModel.ts";
import { parseOptions, UserError } from "./userError.ts";
import { modelTinyCommand } from "./modelTiny.ts";

const InitOptions = z.object({
  arch: z.enum(["gpt-oss"]),
  preset: z.enum(PRESETS),
  out: z.string().min(1),
  mxfp4: z.boolean().default(false),
  seed: z.coerce.number().int().nonnegative(),
  device: z.string().min(1).optional(),
  python: z.string().min(1).optional(),
});

export function modelCommand(): Command {
  return new Command("model")
    .description("Model folders: make a gpt-oss checkpoint with random weights")
    .addCommand(initCommand())
    .addCommand(modelTinyCommand());
}

function initCommand(): Command {
  return new Command("init")
    .description(
      "Write a checkpoint with random weights in the published layout (config, safetensors, tokenizer, chat template)",
    )
    .option("--arch <arch>", "architecture: gpt-oss", "gpt-oss")
    .requiredOption(
      "--preset <preset>",
      "tiny (runs on a CPU in seconds) or 20b (the published shape)",
    )
    .requiredOption("--out <dir>", "folder to create; must not exist or be empty")
    .option("--mxfp4", "store the MoE experts in MXFP4, as gpt-oss-20b ships them")
    .option("--seed <n>", "random seed of the weights", "0")
    .option(
      "--device <device>",
      "where to make the tensors: cpu or cuda (default: cuda when present)",
    )
    .option("--python <path>", "Python with the engine (default: RL2048_PYTHON, else .venv)")
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(InitOptions, raw);
      const out = resolve(options.out);
      if (existsSync(out) && (!statSync(out).isDirectory() || readdirSync(out).length > 0)) {
        throw new UserError(`--out: ${out} already exists and is not an empty folder`);
      }
      await runInit({ ...options, out });
    });
}

async function runInit(options: z.infer<typeof InitOptions>): Promise<void> {
  const label = `gpt-oss ${options.preset}${options.mxfp4 ? " (MXFP4 experts)" : ""}`;
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar(
        { format: "{bar} {percentage}% | {written} / {size} | {tensor}", stream: process.stderr },
        cliProgress.Presets.shades_classic,
      )
    : null;
  let lastLogged = 0;
  console.error(`rl2048 model init: writing ${label} to ${options.out}`);
  try {
    const { seconds } = await initModel({
      ...options,
      onProgress: ({ tensor, bytes, total }) => {
        const payload = { tensor, written: size(bytes), size: size(total) };
        if (bar) {
          if (bar.getTotal() !== total) bar.start(total, 0, payload);
          bar.update(bytes, payload);
        } else if (bytes === total || bytes - lastLogged >= total / 10) {
          lastLogged = bytes;
          console.error(
            `  ${Math.round((100 * bytes) / total)}% ${payload.written} / ${payload.size}`,
          );
        }
      },
    });
    bar?.stop();
    console.log(`wrote ${label} to ${options.out} in ${seconds.toFixed(1)} s`);
  } catch (err) {
    bar?.stop();
    if (err instanceof InitModelError && err.exitCode === 2) throw new UserError(err.message);
    throw err;
  }
}

function size(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}
