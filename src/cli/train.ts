import { Command } from "commander";

// Placeholder until its issue lands; replaced by the real command.
export function trainCommand(): Command {
  return new Command("train").description("Train a model with GRPO (not built yet)").action(() => {
    throw new Error("rl2048 train is not built yet");
  });
}
