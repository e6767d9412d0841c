/**
 * Game benchmark: moves per second of the TypeScript game and of the plain-Python reference
 * of the same rules (src/game/reference/game_reference.py), side by side in one run.
 *
 * Both play the same cycle of random keys from seed 0 on, starting the next seed whenever a
 * game ends, for the same number of moves; the summed scores must agree, which shows both
 * did the same work. Writes bench/game/RESULTS.md.
 *
 *   npx tsx bench/game/bench.ts [--moves N] [--python python3]
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DIRECTIONS, Game, KEY_PRESETS, PythonRandom } from "../../src/game/index.ts";
import { runReference } from "../../src/game/reference/runReference.ts";

const { values } = parseArgs({
  options: {
    moves: { type: "string", default: "200000" },
    python: { type: "string", default: "python3" },
  },
});
const MOVES = Number(values.moves);
const PRESET = KEY_PRESETS.wasd;
const SETUPS = [
  { size: 4, target: 2048, p4: 0.1 },
  { size: 6, target: 2048, p4: 0.1 },
];

/** A fixed cycle of 4096 random keys. */
const rng = new PythonRandom(2048);
const KEYS = Array.from({ length: 4096 }, () => PRESET[rng.choice(DIRECTIONS)]);

function playTs(setup: (typeof SETUPS)[number]) {
  let seed = 0;
  let game = new Game({ ...setup, seed, keys: "wasd" });
  let finished = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < MOVES; i++) {
    if (game.state !== "ongoing") {
      finished += game.score;
      game = new Game({ ...setup, seed: ++seed, keys: "wasd" });
    }
    game.act(KEYS[i % KEYS.length]!);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { seconds, games: seed + 1, score: finished + game.score };
}

function playPython(setup: (typeof SETUPS)[number]) {
  return runReference<{ seconds: number; games: number; score: number }>(
    { op: "bench", ...setup, preset: PRESET, keys: KEYS.join(""), moves: MOVES },
    values.python,
  );
}

const python = spawnSync(values.python, ["--version"], { encoding: "utf8" }).stdout.trim();
const cpu = os.cpus()[0]?.model ?? "unknown CPU";
const rows: string[] = [];
console.log(`${MOVES} moves per run · ${cpu} · Node ${process.version} · ${python}`);
for (const setup of SETUPS) {
  playTs(setup); // warm-up
  const ts = [playTs(setup), playTs(setup), playTs(setup)].sort(
    (a, b) => a.seconds - b.seconds,
  )[0]!;
  const py = playPython(setup);
  if (ts.score !== py.score || ts.games !== py.games) {
    throw new Error(`the two sides played different games: ${JSON.stringify({ ts, py })}`);
  }
  const tsRate = MOVES / ts.seconds;
  const pyRate = MOVES / py.seconds;
  const row = `| ${setup.size}x${setup.size} | ${ts.games} | ${Math.round(tsRate).toLocaleString("en")} | ${Math.round(pyRate).toLocaleString("en")} | ${(tsRate / pyRate).toFixed(1)}x |`;
  console.log(row);
  rows.push(row);
}

const results = `# Game benchmark

Moves per second of \`src/game\` (TypeScript, best of 3 runs after a warm-up) and of the plain-Python
reference of the same rules (\`src/game/reference/game_reference.py\`, lists of lists as the seed's
\`GameBoard\`), measured side by side in one run by \`npx tsx bench/game/bench.ts\`. Each side plays
${MOVES.toLocaleString("en")} moves: a fixed cycle of random keys, target 2048, p4 0.1, seeds 0, 1, 2, ...
(the next seed when a game ends); both sides played the same games (their summed scores agree).
One core each.

| board | games | TypeScript moves/s | Python moves/s | ratio |
| --- | --- | --- | --- | --- |
${rows.join("\n")}

- CPU: ${cpu}, ${os.arch()}, ${os.cpus().length} logical cores (shared with other work while measured)
- Node ${process.version}, ${python}
- Date: ${new Date().toISOString().slice(0, 10)}
`;
writeFileSync(fileURLToPath(new URL("./RESULTS.md", import.meta.url)), results);
console.log("wrote bench/game/RESULTS.md");
