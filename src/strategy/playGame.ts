/**
 * The game loop: one game on src/game, the strategy asked once per move.
 *
 * Only an exact string that is a key of the game's preset counts as a move (no trimming or
 * case folding: the game's lenient parsing is for people, not programs). The game ends as
 * `success`/`failed` by the rules, or early as `timeout` (wall time or move cap), `crash`,
 * `invalid_action` or `frozen` (K moves in a row that change nothing).
 */
import { Game, KEY_PRESETS } from "../game/index.ts";
import type { GameResult, GameSpec, Limits, Outcome } from "./types.ts";

/** What one call of the strategy gave: a key, or why there is none. */
export type StrategyReply =
  | { kind: "key"; key: string }
  | { kind: "invalid"; message: string }
  | { kind: "crash"; message: string }
  | { kind: "timeout" };

/** Asks the strategy for a move on this game (it reads `game.exponents` or `game.board`). */
export type AskStrategy = (game: Game) => StrategyReply;

export function gameResult(
  game: Game,
  outcome: Outcome,
  startMs: number,
  steps: number,
  message?: string,
): GameResult {
  const result: GameResult = {
    outcome,
    steps,
    score: game.score,
    maxTile: game.maxTile,
    target: game.target,
    board: game.board,
    seconds: (performance.now() - startMs) / 1000,
  };
  if (message !== undefined) result.message = message;
  return result;
}

/** Plays one game; `startMs` is when its time budget began (loading counts too). */
export function playGame(
  spec: GameSpec,
  limits: Pick<Limits, "gameSeconds" | "maxSteps" | "frozenAfter">,
  ask: AskStrategy,
  startMs = performance.now(),
): GameResult {
  const game = new Game(spec);
  const validKeys = new Set<string>(Object.values(KEY_PRESETS[game.keys]));
  const deadline = startMs + limits.gameSeconds * 1000;
  let steps = 0;
  let still = 0;
  const end = (outcome: Outcome, message?: string) =>
    gameResult(game, outcome, startMs, steps, message);

  while (game.state === "ongoing") {
    if (steps >= limits.maxSteps) return end("timeout", `move cap of ${limits.maxSteps} reached`);
    const reply = ask(game);
    if (performance.now() > deadline || reply.kind === "timeout") {
      return end("timeout", `over ${limits.gameSeconds} s`);
    }
    if (reply.kind === "crash") return end("crash", reply.message);
    if (reply.kind === "invalid") return end("invalid_action", reply.message);
    if (!validKeys.has(reply.key)) {
      return end("invalid_action", `returned ${JSON.stringify(reply.key.slice(0, 40))}, not a key`);
    }
    const direction = game.direction(reply.key)!;
    const changes = game.wouldChange(direction);
    game.move(direction);
    steps++;
    still = changes ? 0 : still + 1;
    if (still >= limits.frozenAfter) {
      return end("frozen", `${still} moves in a row changed nothing`);
    }
  }
  return end(game.state === "success" ? "success" : "failed");
}
