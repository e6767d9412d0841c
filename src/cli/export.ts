import { Command } from "commander";

// Placeholder until its issue lands; replaced by the real command.
export function exportCommand(): Command {
  return new Command("export")
    .description("Export a checkpoint as lora, merged_16bit or mxfp4 (not built yet)")
    .action(() => {
      throw new Error("rl2048 export is not built yet");
    });
}
