import { Command } from "commander";
import { UserError } from "./userError.ts";
import { trainCommand } from "./train.ts";
import { playCommand } from "./play.ts";
import { replayCommand } from "./replay.ts";
import { checkCommand } from "./check.ts";
import { evalCommand } from "./eval.ts";
import { modelCommand } from "./model.ts";
import { exportCommand } from "./export.ts";
import { corpusCommand } from "./corpus.ts";

const program = new Command("rl2048")
  .description("Train a language model with GRPO to write Python programs that play 2048")
  .version("0.1.0")
  .showHelpAfterError("(run with --help for usage)");

for (const command of [
  trainCommand(),
  playCommand(),
  replayCommand(),
  checkCommand(),
  evalCommand(),
  modelCommand(),
  exportCommand(),
  corpusCommand(),
]) {
  program.addCommand(command);
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof UserError) {
    console.error(`rl2048: ${err.message}`);
    process.exit(2);
  }
  throw err;
}
