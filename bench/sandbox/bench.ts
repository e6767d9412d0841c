/**
 * Sandbox throughput at 6x6 (target 2048, p4 0.1): games per second for model-like
 * strategies with all cores, through SandboxPool, side by side in the same run with the
 * seed's way (a Python process per game, the game in plain Python, the strategy exec'd in
 * it; seed_way.py). Writes bench/sandbox/RESULTS.md.
 *
 *   npx tsx bench/sandbox/bench.ts [--games N]
 */
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SandboxPool } from "../../src/strategy/sandboxPool.ts";
import type { GameSpec } from "../../src/strategy/types.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const STRATEGIES = ["random_choice", "preference_order", "greedy_empty"];
const gamesArg = process.argv.indexOf("--games");
const GAMES = gamesArg > 0 ? Number(process.argv[gamesArg + 1]) : 40;
const CORES = availableParallelism();
const spec = (seed: number): GameSpec => ({ size: 6, target: 2048, p4: 0.1, seed, keys: "bepo" });

interface Row {
  name: string;
  oursGps: number;
  seedGps: number;
  oursMoves: number;
  seedMoves: number;
  oursWins: number;
  seedWins: number;
}

function seedGame(file: string, seed: number): Promise<{ state: string; steps: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn("python3", [join(HERE, "seed_way.py"), file, "6", "2048", "0.1", String(seed)]);
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.on("error", reject);
    p.on("exit", () => {
      const [state, steps] = out.trim().split(" ");
      resolve({ state: state ?? "?", steps: Number(steps) });
    });
  });
}

async function runLimited<T>(n: number, limit: number, task: (i: number) => Promise<T>) {
  const results: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < n) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return results;
}

async function main() {
  const load = loadavg()[0]!.toFixed(1);
  const t0 = performance.now();
  const pool = await SandboxPool.start({ workers: CORES });
  const startup = (performance.now() - t0) / 1000;
  const rows: Row[] = [];
  for (const name of STRATEGIES) {
    const file = join(HERE, "strategies", `${name}.py`);
    const code = readFileSync(file, "utf8");
    await pool.score(code, [spec(0)]); // warm: each worker has loaded Pyodide already
    let t = performance.now();
    const ours = await Promise.all(
      Array.from({ length: GAMES }, (_, i) => pool.score(code, [spec(i + 1)])),
    );
    const oursSec = (performance.now() - t) / 1000;
    t = performance.now();
    const seed = await runLimited(GAMES, CORES, (i) => seedGame(file, i + 1));
    const seedSec = (performance.now() - t) / 1000;
    const games = ours.map((r) => r.games[0]!);
    rows.push({
      name,
      oursGps: GAMES / oursSec,
      seedGps: GAMES / seedSec,
      oursMoves: games.reduce((s, g) => s + g.steps, 0) / oursSec,
      seedMoves: seed.reduce((s, g) => s + g.steps, 0) / seedSec,
      oursWins: games.filter((g) => g.outcome === "success").length,
      seedWins: seed.filter((g) => g.state === "success").length,
    });
    const r = rows.at(-1)!;
    console.log(
      `${name}: ours ${r.oursGps.toFixed(1)} games/s, seed's way ${r.seedGps.toFixed(1)} games/s, ` +
        `ratio ${(r.oursGps / r.seedGps).toFixed(1)}x`,
    );
  }
  await pool.close();

  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const python = await new Promise<string>((resolve) => {
    const p = spawn("python3", ["--version"]);
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.on("exit", () => resolve(out.trim()));
  });
  const lines = [
    "# Sandbox throughput (6x6, target 2048, p4 0.1)",
    "",
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpu}, ${CORES} cores (${CORES} sandbox workers,`,
    `${CORES} Python processes at a time for the seed's way), Node ${process.version}, ${python},`,
    `${GAMES} games per strategy and side (seeds 1..${GAMES}), one run: \`npx tsx bench/sandbox/bench.ts\`.`,
    `Load average when it started: ${load} (other work on the machine slows both sides).`,
    "",
    "Ours: `SandboxPool.score` (Pyodide in worker threads of the sandbox process, the game in",
    "TypeScript, checks and limits on). The seed's way: a `python3` process per game running the",
    "seed's game rules in Python with the strategy exec'd in it (`seed_way.py`). Both use all",
    "cores, so the ratio is also the ratio per core. Pool start-up (not counted above): " +
      `${startup.toFixed(1)} s.`,
    "",
    "| strategy | ours games/s | seed's way games/s | ratio | ours moves/s | seed's moves/s | wins ours / seed's |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.oursGps.toFixed(1)} | ${r.seedGps.toFixed(1)} | ${(r.oursGps / r.seedGps).toFixed(1)}x | ` +
        `${Math.round(r.oursMoves)} | ${Math.round(r.seedMoves)} | ${r.oursWins} / ${r.seedWins} of ${GAMES} |`,
    ),
    "",
    "The strategies (`strategies/`) are the kinds a model writes: a random choice, a fixed",
    "preference order that simulates each move to skip those that change nothing, and a one-ply",
    "greedy search on empty cells. Wins can differ between the sides: `random` draws from a",
    "generator seeded by the game's seed in the sandbox, and from an unseeded one in the seed's way.",
    "",
  ];
  writeFileSync(join(HERE, "RESULTS.md"), lines.join("\n"));
  console.log(`wrote ${join(HERE, "RESULTS.md")}`);
}

await main();
