import { Command } from "commander";

// Placeholder until its issue lands; replaced by the real command.
export function modelCommand(): Command {
  return new Command("model")
    .description("Model folders: make a checkpoint with random weights (not built yet)")
    .action(() => {
      throw new Error("rl2048 model is not built yet");
    });
}
