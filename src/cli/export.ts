/**
 * `rl2048 export CHECKPOINT --format lora|merged_16bit|mxfp4 --out DIR`: loads the model and
 * the checkpoint in the engine and writes the export (through a temporary folder).
 */
import { Command, Option } from "commander";
import { readTrainerState } from "../train/checkpoints.ts";
import { ConfigError, parseConfig } from "../train/config.ts";
import { ModelFolderError } from "../train/modelFolder.ts";
import {
  describeFailure,
  modelFolder,
  startEngine,
  TrainError,
  writeExport,
} from "../train/session.ts";
import { UserError } from "./userError.ts";

interface ExportFlags {
  format: "lora" | "merged_16bit" | "mxfp4";
  out: string;
  model?: string;
}

async function runExport(checkpoint: string, flags: ExportFlags): Promise<void> {
  let config;
  try {
    const state = readTrainerState(checkpoint);
    const saved = parseConfig(state.config, `${checkpoint}/trainer_state.json`);
    config = flags.model ? { ...saved, model: { ...saved.model, path: flags.model } } : saved;
  } catch (err) {
    throw new UserError((err as Error).message);
  }
  let engine;
  try {
    const dir = await modelFolder(config);
    engine = await startEngine(config, dir);
    await engine.loadState({ path: checkpoint });
    const out = await writeExport(engine, flags.format, flags.out);
    console.log(`exported ${flags.format}: ${out}`);
  } catch (err) {
    if (err instanceof ModelFolderError || err instanceof TrainError || err instanceof ConfigError)
      throw new UserError(err.message);
    if (process.env.RL2048_DEBUG) console.error(err);
    const line = describeFailure(err);
    console.error(`rl2048 export: ${line}`);
    process.exitCode = 1;
  } finally {
    await engine?.shutdown();
  }
}

export function exportCommand(): Command {
  return new Command("export")
    .description("Export a checkpoint as lora, merged_16bit or mxfp4")
    .argument("<checkpoint>", "a checkpoint folder (outputs/<run>/checkpoint-<step>)")
    .addOption(
      new Option("--format <format>", "export format")
        .choices(["lora", "merged_16bit", "mxfp4"])
        .makeOptionMandatory(),
    )
    .requiredOption("--out <dir>", "folder to write (must not exist)")
    .option("--model <dir>", "the base model folder, when it moved since training")
    .action((checkpoint: string, flags: ExportFlags) => runExport(checkpoint, flags));
}
