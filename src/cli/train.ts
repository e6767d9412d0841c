/**
 * `rl2048 train`: GRPO training. The config is the preset (default `tiny`), then --config FILE,
 * then --set key=value, then the explicit flags. `--resume` continues a run from its last (or a
 * given) checkpoint with the config saved in it; flags still apply on top (e.g. more --steps).
 */
import { Command, Option } from "commander";
import { resolveResume, readTrainerState } from "../train/checkpoints.ts";
import { ConfigError, resolveConfig, type ConfigInput } from "../train/config.ts";
import { ModelFolderError } from "../train/modelFolder.ts";
import { describeFailure, runTraining, TrainError } from "../train/session.ts";
import { UserError } from "./userError.ts";

interface TrainFlags {
  preset?: string;
  config?: string;
  model?: string;
  steps?: string;
  outputDir?: string;
  runName?: string;
  seed?: string;
  resume?: string | true;
  set: string[];
}

/** The explicit flags as a partial config (numbers checked by the schema). */
function flagLayer(flags: TrainFlags): ConfigInput {
  const layer: Record<string, Record<string, unknown>> = {};
  const put = (section: string, key: string, value: unknown) => {
    layer[section] = { ...layer[section], [key]: value };
  };
  if (flags.model !== undefined) put("model", "path", flags.model);
  if (flags.steps !== undefined) put("training", "max_steps", Number(flags.steps));
  if (flags.outputDir !== undefined) put("output", "output_dir", flags.outputDir);
  if (flags.runName !== undefined) put("output", "run_name", flags.runName);
  const out: ConfigInput = { ...layer };
  if (flags.seed !== undefined) out.seed = Number(flags.seed);
  return out;
}

async function train(flags: TrainFlags): Promise<void> {
  const sources = { sets: flags.set, flags: flagLayer(flags) };
  let config;
  let resume;
  try {
    config = resolveConfig({ ...sources, preset: flags.preset, file: flags.config });
    if (flags.resume !== undefined) {
      const target = flags.resume === true ? "latest" : flags.resume;
      const ref = resolveResume(target, config.output.output_dir, config.output.run_name);
      const state = readTrainerState(ref.path);
      config = resolveConfig(sources, state.config);
      resume = { checkpoint: ref.path, state };
    }
  } catch (err) {
    if (err instanceof Error) throw new UserError(err.message);
    throw err;
  }
  try {
    const reason = await runTraining(config, resume);
    if (reason === "interrupted") process.exitCode = 130;
  } catch (err) {
    if (err instanceof ModelFolderError || err instanceof TrainError || err instanceof ConfigError)
      throw new UserError(err.message);
    if (process.env.RL2048_DEBUG) console.error(err);
    const line = describeFailure(err);
    console.error(`rl2048 train: ${line}`);
    process.exit(1);
  }
}

export function trainCommand(): Command {
  return new Command("train")
    .description("Train a model with GRPO to write 2048 strategies (the tiny preset by default)")
    .option("--preset <name>", "preset from configs/: seed or tiny (default tiny)")
    .option("--config <file>", "YAML or JSON config file, over the preset")
    .option("--model <dir>", "model folder (config: model.path)")
    .option("--steps <n>", "training steps (config: training.max_steps)")
    .option("--output-dir <dir>", "where runs are written (config: output.output_dir)")
    .option("--run-name <name>", "the run's folder name (default: the start time)")
    .option("--seed <n>", "random seed")
    .addOption(
      new Option("--resume [checkpoint]", "continue from latest, a run folder or a checkpoint"),
    )
    .option(
      "--set <key=value>",
      "set any config field, e.g. --set training.learning_rate=1e-5 (repeatable)",
      (value: string, all: string[]) => [...all, value],
      [],
    )
    .action((flags: TrainFlags) => train(flags));
}
