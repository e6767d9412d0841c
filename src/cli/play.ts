/**
 * `rl2048 play`: 2048 in the terminal. The preset's keys and the arrow keys move, q gives up
 * (the game fails, as the seed's q), Esc or Ctrl-C leaves. Whitespace and other keys are
 * ignored here; `rl2048 replay` applies the game's strict rule instead.
 *
 * On a terminal the board is redrawn in place (raw mode); when stdin is not a terminal the
 * keys are read from it and every position is printed in turn.
 */
import { emitKeypressEvents } from "node:readline";
import { Command } from "commander";
import { Game, KEY_PRESETS, renderPosition, type Direction } from "../game/index.ts";
import { addGameOptions, parseGameOptions } from "./gameOptions.ts";

export interface PlayIo {
  input: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  output: NodeJS.WritableStream;
  /** Redraw in place on a terminal (true) or print every position in turn (false). */
  interactive: boolean;
  colors: boolean;
}

interface Key {
  name?: string;
  ctrl?: boolean;
}

const ARROWS: Record<string, Direction> = { up: "up", left: "left", down: "down", right: "right" };
const CLEAR = "\x1b[H\x1b[2J";

/** Plays `game` from the keys of `io.input` until the game ends, the input ends or the user leaves. */
export function playGame(game: Game, io: PlayIo): Promise<Game> {
  const { input, output, interactive, colors } = io;
  const keys = KEY_PRESETS[game.keys];
  const help = `keys: ${keys.up} up, ${keys.left} left, ${keys.down} down, ${keys.right} right or the arrows; q gives up, Esc leaves`;
  let note = "";

  const draw = () => {
    const position = renderPosition(
      { board: game.board, score: game.score, state: game.state },
      game.target,
      colors,
    );
    const status = `moves ${game.moves}${note ? ` · ${note}` : ""}`;
    output.write(
      interactive
        ? `${CLEAR}rl2048 play · ${game.size}x${game.size} · target ${game.target}\n${help}\n\n${position}\n${status}\n`
        : `${position}\n${status}\n\n`,
    );
  };

  return new Promise((resolve) => {
    const finish = (last: string) => {
      input.removeListener("keypress", onKey);
      input.removeListener("end", onEnd);
      if (interactive) input.setRawMode?.(false);
      input.pause();
      output.write(`${last}\n`);
      resolve(game);
    };
    const ending = () =>
      game.state === "success"
        ? `You reached ${game.target} with a score of ${game.score}.`
        : game.state === "failed"
          ? `Game over with a score of ${game.score}.`
          : `Left with a score of ${game.score}.`;

    const onEnd = () => finish(ending());
    const onKey = (str: string | undefined, key: Key | undefined) => {
      const name = key?.name ?? "";
      if ((key?.ctrl && (name === "c" || name === "d")) || name === "escape") return onEnd();
      note = "";
      const arrow = ARROWS[name];
      if (arrow && str === undefined) game.move(arrow);
      else if (str !== undefined && game.direction(str)) game.act(str);
      else if (str?.toLowerCase() === "q") game.act(str);
      else if (str === undefined || str.trim() === "") return;
      else note = `${JSON.stringify(str)} is not a key of the ${game.keys} preset`;
      draw();
      if (game.state !== "ongoing") onEnd();
    };

    emitKeypressEvents(input);
    input.on("keypress", onKey);
    input.on("end", onEnd);
    if (interactive) input.setRawMode?.(true);
    input.resume();
    draw();
  });
}

export function playCommand(): Command {
  return addGameOptions(new Command("play").description("Play 2048 in the terminal"))
    .option("--no-color", "draw the board without colours")
    .action(async (opts: Record<string, unknown>) => {
      const game = new Game(parseGameOptions(opts));
      const colors = opts.color !== false && process.stdout.isTTY === true && !process.env.NO_COLOR;
      await playGame(game, {
        input: process.stdin,
        output: process.stdout,
        interactive: process.stdin.isTTY === true && process.stdout.isTTY === true,
        colors,
      });
    });
}
