/**
 * `rl2048 replay`: plays a string of keys in order, one character per key, under the game's
 * exact rules (a character outside the preset fails the game, as in the seed), and prints the
 * starting position and the position after every key: JSON lines with --json, boards without.
 */
import { Command } from "commander";
import { Game, renderPosition, type Direction, type GameOptions } from "../game/index.ts";
import { addGameOptions, parseGameOptions } from "./gameOptions.ts";

export interface Position {
  board: number[][];
  score: number;
  state: string;
}

export interface ReplayStep {
  /** The key just played (absent for the starting position) and what it means. */
  key?: string;
  direction?: Direction | null;
  position: Position;
}

/** The starting position, then one position after each key of `moves` (code points, NFC). */
export function replay(options: GameOptions, moves: string): ReplayStep[] {
  const game = new Game(options);
  const at = (): Position => ({ board: game.board, score: game.score, state: game.state });
  const steps: ReplayStep[] = [{ position: at() }];
  for (const key of moves.normalize("NFC")) {
    const direction = game.direction(key) ?? null;
    game.act(key);
    steps.push({ key, direction, position: at() });
  }
  return steps;
}

export function replayCommand(): Command {
  return addGameOptions(
    new Command("replay").description("Play a string of keys and print every position"),
  )
    .requiredOption("--moves <keys>", "the keys to play in order, one character each")
    .option("--json", 'one JSON object per line: {"board", "score", "state"}')
    .option("--no-color", "draw the boards without colours")
    .action((opts: Record<string, unknown>) => {
      const options = parseGameOptions(opts);
      const steps = replay(options, String(opts.moves));
      if (opts.json) {
        for (const { position } of steps) process.stdout.write(JSON.stringify(position) + "\n");
        return;
      }
      const colors = opts.color !== false && process.stdout.isTTY === true && !process.env.NO_COLOR;
      steps.forEach(({ key, direction, position }, i) => {
        const title =
          key === undefined
            ? "start"
            : `${i}. key ${JSON.stringify(key)} (${direction ?? "not a move"})`;
        process.stdout.write(`${title}\n${renderPosition(position, options.target, colors)}\n\n`);
      });
    });
}
