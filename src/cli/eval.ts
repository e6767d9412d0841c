import { Command } from "commander";

// Placeholder until its issue lands; replaced by the real command.
export function evalCommand(): Command {
  return new Command("eval")
    .description("Play many games with one strategy and report how it does (not built yet)")
    .action(() => {
      throw new Error("rl2048 eval is not built yet");
    });
}
