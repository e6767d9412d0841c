import { Command } from "commander";

// Placeholder until its issue lands; replaced by the real command.
export function checkCommand(): Command {
  return new Command("check")
    .description("Extract, check, run and score one completion or .py file (not built yet)")
    .action(() => {
      throw new Error("rl2048 check is not built yet");
    });
}
