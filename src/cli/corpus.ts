import { Command } from "commander";

// Placeholder until its issue lands; replaced by the real command.
export function corpusCommand(): Command {
  return new Command("corpus")
    .description("Generate a corpus of Python 2048 strategies (not built yet)")
    .action(() => {
      throw new Error("rl2048 corpus is not built yet");
    });
}
