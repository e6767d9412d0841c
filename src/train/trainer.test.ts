/**
 * The loop's bookkeeping with scripted parts (the real ones run in train.e2e.test.ts): which
 * groups dynamic sampling keeps, the advantages and items train_step gets, the data position
 * and the logs, through one run of one step. Completions are one token whose id is the reward it earns.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "./config.ts";
import { readPendingBatch, readTrainerState } from "./checkpoints.ts";
import { TrainConsole } from "./console.ts";
import type { PolicyEngine, TrainItem } from "./ports.ts";
import { RunLog } from "./runLog.ts";
import type { SamplingParts } from "./sampling.ts";
import { Trainer } from "./trainer.ts";

/** Rewards of each generate call, prompt-major; each completion is the token [reward]. */
function scriptedParts(rounds: number[][]) {
  const trained: TrainItem[][] = [];
  let call = 0;
  const engine: PolicyEngine = {
    async generate(request) {
      const rewards = rounds[call++]!;
      expect(rewards).toHaveLength(request.prompts.length * request.n);
      return {
        completions: rewards.map((r, i) => ({
          prompt_index: Math.floor(i / request.n),
          ids: [r],
          logprobs: [-1],
          finish_reason: "stop" as const,
        })),
      };
    },
    async logprobs() {
      throw new Error("not used with num_iterations 1");
    },
    async trainStep(request) {
      trained.push(request.items);
      const clip = { low_mean: 0, high_mean: 0, region_mean: 0 };
      return {
        loss: 0,
        kl: 0,
        entropy: 1,
        clip_ratio: clip,
        grad_norm: 1,
        learning_rate: 1e-4,
        step: 1,
      };
    },
    async save() {
      return { path: "", files: [] };
    },
  };
  const parts: SamplingParts = {
    engine,
    codec: { encode: () => [], decode: (ids) => String(ids[0]) },
    scorer: {
      score: async (_code, seeds) => ({
        games: seeds.map(() => ({ outcome: "failed", score: 0, maxTile: 2, board: [[2]] })),
      }),
    },
    rewards: [
      {
        name: "value",
        weight: 1,
        reward: ({ extraction }) => (extraction.ok ? Number(extraction.code) : 0),
      },
    ],
    extract: (text) => ({ ok: true, code: text }),
  };
  return { parts, trained, calls: () => call };
}

function makeTrainer(
  parts: SamplingParts,
  training: Record<string, unknown>,
  resume?: { runDir: string; checkpoint: string },
) {
  const runDir = resume?.runDir ?? mkdtempSync(join(tmpdir(), "rl2048-trainer-"));
  const config = parseConfig({
    generation: { num_generations: 2 },
    training: {
      max_steps: 1,
      per_device_train_batch_size: 2,
      gradient_accumulation_steps: 1,
      ...training,
    },
    output: { save_steps: 100, log_completions_steps: 0, tensorboard: false },
  });
  const log = new RunLog(runDir, { tensorboard: false });
  const trainer = new Trainer({
    config,
    runName: "t",
    runDir,
    parts,
    promptIds: [1, 2],
    log,
    console: new TrainConsole(config.training.max_steps),
    ...(resume
      ? {
          resume: {
            ...readTrainerState(resume.checkpoint),
            pending: readPendingBatch(resume.checkpoint),
          },
        }
      : {}),
  });
  return { trainer, log, runDir };
}

describe("Trainer", () => {
  it("drops groups with equal rewards and samples again (dynamic sampling)", async () => {
    // Round 1: groups [1,1] (dropped) and [0,2] (kept); round 2 samples 1 group: [5,5]
    // (dropped); round 3 samples 1 group: [3,4] (kept). The batch is then full.
    const { parts, trained, calls } = scriptedParts([
      [1, 1, 0, 2],
      [5, 5],
      [3, 4],
    ]);
    const { trainer, log, runDir } = makeTrainer(parts, {
      dynamic_sampling: true,
      max_sampling_rounds: 4,
    });
    expect(await trainer.run()).toBe("finished");
    log.close();
    expect(calls()).toBe(3);
    expect(trainer.dataPosition).toBe(4);
    const items = trained[0]!;
    expect(items.map((i) => i.completion[0])).toEqual([0, 2, 3, 4]);
    // Group std: [0,2] -> sqrt(2); [3,4] -> sqrt(0.5). Advantage = (r - mean) / (std + 1e-4).
    expect(items[0]!.advantage).toBeCloseTo(-1 / (Math.SQRT2 + 1e-4), 9);
    expect(items[3]!.advantage).toBeCloseTo(0.5 / (Math.sqrt(0.5) + 1e-4), 9);
    const metrics = JSON.parse(readFileSync(join(runDir, "metrics.jsonl"), "utf8"));
    expect(metrics).toMatchObject({ step: 1, "sampling/rounds": 3, "sampling/groups_trained": 2 });
    // Over all 4 groups sampled: two had equal rewards.
    expect(metrics.frac_reward_zero_std).toBe(0.5);
    expect(metrics.reward).toBe((1 + 1 + 0 + 2 + 5 + 5 + 3 + 4) / 8);
    expect(readFileSync(join(runDir, "best_strategy.py"), "utf8").trim()).toBe("5");
  });

  it("gives up after max_sampling_rounds and skips the update when nothing is left", async () => {
    const { parts, trained, calls } = scriptedParts([
      [1, 1, 2, 2],
      [3, 3, 4, 4],
    ]);
    const { trainer, log, runDir } = makeTrainer(parts, {
      dynamic_sampling: true,
      max_sampling_rounds: 2,
    });
    expect(await trainer.run()).toBe("finished");
    log.close();
    expect(calls()).toBe(2);
    expect(trained).toHaveLength(0);
    const metrics = JSON.parse(readFileSync(join(runDir, "metrics.jsonl"), "utf8"));
    expect(metrics["sampling/groups_trained"]).toBe(0);
    expect(metrics.kl).toBeUndefined();
    expect(metrics.frac_reward_zero_std).toBe(1);
  });

  it("trains on every group without dynamic sampling", async () => {
    const { parts, trained } = scriptedParts([[1, 1, 0, 2]]);
    const { trainer, log } = makeTrainer(parts, { dynamic_sampling: false });
    expect(await trainer.run()).toBe("finished");
    log.close();
    expect(trained[0]!.map((i) => i.advantage)).toEqual([
      0,
      0,
      expect.closeTo(-0.70706, 4),
      expect.closeTo(0.70706, 4),
    ]);
  });
});

/**
 * An engine whose completions follow from the sampling seed (so a resumed run samples what the
 * uninterrupted one did) and whose logprobs tell how many updates the weights had; `events`
 * is the order of engine calls and scorer calls, batch by batch.
 */
function aheadParts(updatesDone = 0) {
  const events: string[] = [];
  const trained: TrainItem[][] = [];
  const batchOf = new Map<number, number>(); // completion id -> generate call
  let generated = 0;
  let updates = updatesDone;
  const note = (event: string) => {
    if (events.at(-1) !== event) events.push(event);
  };
  const { parts } = scriptedParts([]);
  parts.engine = {
    ...parts.engine,
    async generate(request) {
      generated++;
      note(`generate ${generated}`);
      const total = request.prompts.length * request.n;
      return {
        completions: Array.from({ length: total }, (_, i) => {
          const id = (request.seed! % 1000) * 10 + i;
          batchOf.set(id, generated);
          return {
            prompt_index: Math.floor(i / request.n),
            ids: [id],
            logprobs: [-1],
            finish_reason: "stop",
          };
        }),
      };
    },
    async logprobs(request) {
      note(`logprobs ${batchOf.get(request.items[0]!.completion[0]!)}`);
      return { policy: request.items.map(() => [-(updates + 1)]) };
    },
    async trainStep(request) {
      note(`train ${batchOf.get(request.items[0]!.completion[0]!)}`);
      trained.push(request.items);
      updates++;
      return scriptedParts([]).parts.engine.trainStep(request);
    },
  };
  const scorer = parts.scorer;
  parts.scorer = {
    // Games take a turn of the event loop, where the engine's calls here take none.
    score: async (code, seeds) => {
      note(`score ${batchOf.get(Number(code))}`);
      await new Promise((resolve) => setTimeout(resolve, 0));
      note(`scored ${batchOf.get(Number(code))}`);
      return scorer.score(code, seeds);
    },
  };
  return { parts, trained, events };
}

describe("Trainer, one step off policy", () => {
  const settings = { one_step_off_policy: true, max_steps: 3 };

  it("plays a batch's games while the next batch is sampled, and trains one step behind", async () => {
    const { parts, trained, events } = aheadParts();
    const { trainer, log } = makeTrainer(parts, settings);
    expect(await trainer.run()).toBe("finished");
    log.close();
    // Batch k's games start once it is sampled and end after batch k+1 was sampled.
    expect(events).toEqual([
      ...["generate 1", "score 1", "logprobs 1"],
      ...["generate 2", "score 2", "logprobs 2", "scored 1", "train 1"],
      ...["generate 3", "score 3", "logprobs 3", "scored 2", "train 2"],
      ...["scored 3", "train 3"],
    ]);
    // Each batch's ratio is against the policy that sampled it: batches 1 and 2 before any
    // update, batch 3 after the first.
    expect(trained.map((items) => items.map((i) => i.old_logprobs))).toEqual([
      [[-1], [-1], [-1], [-1]],
      [[-1], [-1], [-1], [-1]],
      [[-2], [-2], [-2], [-2]],
    ]);
    expect(trainer.dataPosition).toBe(3 * 2);
  });

  it("keeps the batch sampled ahead in the checkpoint, so a stopped run resumes as if never stopped", async () => {
    const straight = aheadParts();
    const full = makeTrainer(straight.parts, settings);
    await full.trainer.run();
    full.log.close();

    const first = aheadParts();
    const stopped = makeTrainer(first.parts, settings);
    const trainStep = first.parts.engine.trainStep;
    first.parts.engine.trainStep = (request) => {
      stopped.trainer.requestStop();
      return trainStep(request);
    };
    expect(await stopped.trainer.run()).toBe("interrupted");
    stopped.log.close();
    const checkpoint = join(stopped.runDir, "checkpoint-1");
    expect(readPendingBatch(checkpoint)).toHaveLength(4);

    const second = aheadParts(1);
    const resumed = makeTrainer(second.parts, settings, { runDir: stopped.runDir, checkpoint });
    expect(await resumed.trainer.run()).toBe("finished");
    resumed.log.close();
    expect([...first.trained, ...second.trained]).toEqual(straight.trained);
    expect(readPendingBatch(join(stopped.runDir, "checkpoint-3"))).toBeNull();
  });
});
