import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  listCheckpoints,
  pruneCheckpoints,
  readPendingBatch,
  readTrainerState,
  removeStaleTemps,
  resolveResume,
  saveCheckpoint,
  writePendingBatch,
  type TrainerState,
} from "./checkpoints.ts";
import { RunLog } from "./runLog.ts";

const state = (step: number): TrainerState => ({
  version: 1,
  run_name: "r",
  step,
  data_position: step * 4,
  rng_state: [1, 2, 3, 4],
  config: { seed: 1 },
  best: null,
});

const writeAdapter = async (dir: string) => writeFileSync(join(dir, "adapter.bin"), "w");

describe("checkpoints", () => {
  it("saves atomically, lists, prunes and resolves --resume", async () => {
    const out = mkdtempSync(join(tmpdir(), "rl2048-ckpt-"));
    const run = join(out, "r");
    for (const step of [10, 20, 30]) await saveCheckpoint(run, state(step), writeAdapter);
    expect(listCheckpoints(run).map((c) => c.step)).toEqual([10, 20, 30]);
    expect(readTrainerState(join(run, "checkpoint-20")).data_position).toBe(80);

    // A save that fails leaves no folder behind and keeps the older ones.
    await expect(
      saveCheckpoint(run, state(40), async () => {
        throw new Error("engine died");
      }),
    ).rejects.toThrow("engine died");
    expect(readdirSync(run).sort()).toEqual(["checkpoint-10", "checkpoint-20", "checkpoint-30"]);

    // A folder without trainer_state.json (a crash mid-copy) is not a checkpoint.
    mkdirSync(join(run, "checkpoint-50"));
    mkdirSync(join(run, ".tmp-checkpoint-60-1"));
    removeStaleTemps(run);
    expect(existsSync(join(run, ".tmp-checkpoint-60-1"))).toBe(false);
    expect(resolveResume("latest", out, null).step).toBe(30);
    expect(resolveResume("latest", out, "r").step).toBe(30);
    expect(resolveResume(run, out, null).step).toBe(30);
    expect(resolveResume(join(run, "checkpoint-10"), out, null).step).toBe(10);
    expect(() => resolveResume("latest", out, "other")).toThrow(/no checkpoint under/);
    expect(() => readTrainerState(join(run, "checkpoint-50"))).toThrow(/is not a checkpoint/);

    // Saving a step again replaces it; pruning keeps the newest.
    await saveCheckpoint(run, { ...state(30), data_position: 999 }, writeAdapter);
    expect(readTrainerState(join(run, "checkpoint-30")).data_position).toBe(999);
    pruneCheckpoints(run, 2);
    expect(listCheckpoints(run).map((c) => c.step)).toEqual([20, 30]);
  });
});

describe("RunLog", () => {
  it("keeps the best strategy apart and drops lines past the resumed step", () => {
    const run = mkdtempSync(join(tmpdir(), "rl2048-log-"));
    const log = new RunLog(run, { tensorboard: false });
    const record = (step: number, reward: number) => ({
      step,
      code: `def strategy(board):\n    return "w"  # ${step}`,
      reward,
      rewards: { function_works: reward },
      outcome: "failed",
      games: [],
    });
    for (const step of [1, 2, 3]) log.metrics(step, { reward: step });
    expect(log.strategy(record(1, 1))).toBe(true);
    expect(log.strategy(record(2, 3))).toBe(true);
    expect(log.strategy(record(3, 2))).toBe(false);
    expect(readFileSync(join(run, "best_strategy.py"), "utf8")).toContain("# 2");
    log.close();

    const resumed = new RunLog(run, {
      tensorboard: false,
      resumeStep: 1,
      best: {
        step: 1,
        reward: 1,
        code: "def strategy(board):\n    pass",
        outcome: null,
        rewards: {},
      },
    });
    const steps = (path: string) =>
      readFileSync(path, "utf8")
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { step: number }).step);
    expect(steps(resumed.metricsPath)).toEqual([1]);
    expect(steps(resumed.strategiesPath)).toEqual([1]);
    expect(readFileSync(join(run, "best_strategy.py"), "utf8")).toContain("pass");
    resumed.close();
  });

  it("reads back the batch sampled ahead, and names what is wrong with a bad one", () => {
    const dir = mkdtempSync(join(tmpdir(), "rl2048-pending-"));
    expect(readPendingBatch(dir)).toBeNull();
    const batch = [
      {
        prompt: [1, 2],
        ids: [3, 4],
        logprobs: [-0.5, -1],
        truncated: false,
        seeds: [7],
        old_logprobs: [-0.4, -1.1],
      },
    ];
    writePendingBatch(dir, batch);
    expect(readPendingBatch(dir)).toEqual(batch);
    writeFileSync(join(dir, "pending_batch.json"), JSON.stringify([{ ...batch[0], ids: [3.5] }]));
    expect(() => readPendingBatch(dir)).toThrow(/pending_batch\.json: 0\.ids\.0: .*int/);
    writeFileSync(join(dir, "pending_batch.json"), "[{");
    expect(() => readPendingBatch(dir)).toThrow(/pending_batch\.json is not readable JSON/);
  });
});
