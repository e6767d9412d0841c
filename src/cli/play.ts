import { Command } from "commander";

// Placeholder until its issue lands; replaced by the real command.
export function playCommand(): Command {
  return new Command("play").description("Play 2048 in the terminal (not built yet)").action(() => {
    throw new Error("rl2048 play is not built yet");
  });
}
