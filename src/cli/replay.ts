import { Command } from "commander";

// Placeholder until its issue lands; replaced by the real command.
export function replayCommand(): Command {
  return new Command("replay")
    .description("Play a string of keys and print every position (not built yet)")
    .action(() => {
      throw new Error("rl2048 replay is not built yet");
    });
}
