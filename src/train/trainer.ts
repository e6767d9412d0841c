/**
 * The GRPO loop. Each step:
 *   sample prompts x num_generations completions (sampling.ts) -> drop groups whose rewards
 *   are all equal and sample again, up to max_sampling_rounds (dynamic sampling, optional)
 *   -> group advantages (src/rl) -> num_iterations engine train_steps -> metrics, strategies,
 *   console -> a checkpoint every save_steps (and at the end, or when asked to stop).
 * With training.one_step_off_policy a step instead trains on the batch sampled a step earlier:
 *   sample the next batch and take its logprobs (GPU) while this batch's games play (sandbox)
 *   -> advantages -> train_step; the batch sampled ahead goes into checkpoints.
 */
import { groupAdvantages } from "../rl/advantages.ts";
import { fillBatch } from "../rl/dynamicSampling.ts";
import { stepMetrics, type TrainStepReport } from "../rl/metrics.ts";
import {
  pruneCheckpoints,
  saveCheckpoint,
  writePendingBatch,
  type PendingBatch,
  type TrainerState,
} from "./checkpoints.ts";
import type { TrainConfig } from "./config.ts";
import type { TrainConsole } from "./console.ts";
import type { ScoreReport, TrainItem } from "./ports.ts";
import { TrainRng } from "./rng.ts";
import type { RunLog } from "./runLog.ts";
import {
  generate,
  sampleRound,
  score,
  type SampledCompletion,
  type SampleRequest,
  type SamplingParts,
  type UnscoredCompletion,
} from "./sampling.ts";

export interface TrainerOptions<R extends ScoreReport> {
  config: TrainConfig;
  runName: string;
  runDir: string;
  parts: SamplingParts<R>;
  promptIds: number[];
  log: RunLog;
  console: TrainConsole;
  /** Where to continue from; a fresh run starts at step 0. */
  resume?: Pick<TrainerState, "step" | "data_position" | "rng_state"> & {
    pending?: PendingBatch | null;
  };
}

type Seconds = { generate: number; score: number; train: number };

/** What a step trains on, and everything it sampled (with dynamic sampling, dropped groups too). */
interface Batch<R extends ScoreReport> {
  sampled: SampledCompletion<R>[];
  kept: SampledCompletion<R>[][];
  rounds: number;
  /** Per kept completion, under the policy that sampled it (one_step_off_policy). */
  oldLogprobs?: number[][];
}

/** A batch sampled ahead of its update; its games are scored in the background. */
interface AheadBatch<R extends ScoreReport> {
  completions: PendingBatch;
  /** Null for a batch read back from a checkpoint, until its step starts scoring it again. */
  scored: Promise<SampledCompletion<R>[][]> | null;
}

export type StopReason = "finished" | "interrupted";

export class Trainer<R extends ScoreReport> {
  step: number;
  dataPosition: number;
  private rng: TrainRng;
  private stopRequested = false;
  private ahead: AheadBatch<R> | null;

  constructor(private readonly o: TrainerOptions<R>) {
    this.step = o.resume?.step ?? 0;
    this.dataPosition = o.resume?.data_position ?? 0;
    this.rng = o.resume ? TrainRng.fromState(o.resume.rng_state) : TrainRng.fromSeed(o.config.seed);
    const pending = o.resume?.pending;
    this.ahead = pending ? { completions: pending, scored: null } : null;
  }

  /** Asks the loop to stop after the current step (then it saves a checkpoint). */
  requestStop(): void {
    this.stopRequested = true;
  }

  async run(): Promise<StopReason> {
    const { config } = this.o;
    const total = config.training.max_steps;
    this.o.console.start(this.step);
    try {
      while (this.step < total) {
        if (this.stopRequested) {
          await this.checkpoint();
          return "interrupted";
        }
        await this.trainOneStep();
        const due = this.step % config.output.save_steps === 0 || this.step === total;
        if (due || this.stopRequested) await this.checkpoint();
        if (this.stopRequested) return "interrupted";
      }
      return "finished";
    } finally {
      this.o.console.stop();
    }
  }

  /** The trainer's side of a checkpoint; the engine writes the rest. */
  trainerState(): TrainerState {
    return {
      version: 1,
      run_name: this.o.runName,
      step: this.step,
      data_position: this.dataPosition,
      rng_state: this.rng.state(),
      config: this.o.config as unknown as Record<string, unknown>,
      best: this.o.log.best,
    };
  }

  async checkpoint(): Promise<string> {
    const { engine } = this.o.parts;
    const path = await saveCheckpoint(this.o.runDir, this.trainerState(), async (dir) => {
      await engine.save({ path: dir, format: "checkpoint" });
      if (this.ahead) writePendingBatch(dir, this.ahead.completions);
    });
    pruneCheckpoints(this.o.runDir, this.o.config.output.save_total_limit);
    this.o.console.log(`saved ${path}`);
    return path;
  }

  private async trainOneStep(): Promise<void> {
    const { config, parts } = this.o;
    const seconds = { generate: 0, score: 0, train: 0 };
    const batch =
      config.training.one_step_off_policy || this.ahead
        ? await this.sampleAhead(seconds)
        : await this.sampleNow(seconds);
    const { kept, sampled } = batch;
    const updates =
      kept.length > 0 ? await this.update(kept.flat(), seconds, batch.oldLogprobs) : [];
    this.step++;

    const metrics = stepMetrics({
      functionNames: parts.rewards.map((r) => r.name),
      weights: parts.rewards.map((r) => r.weight),
      groupSize: config.generation.num_generations,
      scale: config.training.scale_rewards,
      completions: sampled.map((c) => ({
        rewards: c.rewards,
        length: c.ids.length,
        truncated: c.truncated,
        outcome: c.outcome,
      })),
      updates,
      seconds,
      samplingRounds: batch.rounds,
      groupsTrained: kept.length,
    });
    this.o.log.metrics(this.step, metrics);
    this.logStrategies(sampled);
    this.o.console.step(this.step, metrics);
    const every = config.output.log_completions_steps;
    if (every > 0 && this.step % every === 0) this.showSample(sampled);
  }

  /** Prompts (groups) a step trains on. */
  private groupsPerStep(): number {
    const { training } = this.o.config;
    return training.per_device_train_batch_size * training.gradient_accumulation_steps;
  }

  /** The prompts of one sampling call, and the seeds it samples and plays with. */
  private nextRequest(groups: number): SampleRequest {
    const gameSeeds = Array.from({ length: this.o.config.game.seeds_per_completion }, () =>
      this.rng.seed(),
    );
    const request = { promptIds: this.o.promptIds, groups, sampleSeed: this.rng.seed(), gameSeeds };
    this.dataPosition += groups;
    return request;
  }

  /** Samples and scores this step's batch now; with dynamic sampling, round after round. */
  private async sampleNow(seconds: Seconds): Promise<Batch<R>> {
    const { config, parts } = this.o;
    const { training, generation } = config;
    const wanted = this.groupsPerStep();
    const rounds = training.dynamic_sampling ? training.max_sampling_rounds : 1;
    let kept: SampledCompletion<R>[][] = [];
    const sampled: SampledCompletion<R>[] = [];
    let round = 0;
    while (round < rounds && kept.length < wanted) {
      round++;
      const groups = training.dynamic_sampling ? wanted - kept.length : wanted;
      const result = await sampleRound(parts, config, this.nextRequest(groups));
      seconds.generate += result.seconds.generate;
      seconds.score += result.seconds.score;
      const flat = result.groups.flat();
      sampled.push(...flat);
      kept = training.dynamic_sampling
        ? fillBatch(
            kept,
            result.groups,
            flat.map((c) => c.total),
            generation.num_generations,
            wanted,
          )
        : result.groups;
    }
    return { sampled, kept, rounds: round };
  }

  /**
   * training.one_step_off_policy: this step trains on the batch sampled a step ago (on the
   * first step, sampled now), whose games were played while the GPU sampled the next batch and
   * took its logprobs. `time/score_s` is then only the wait for games still running.
   */
  private async sampleAhead(seconds: Seconds): Promise<Batch<R>> {
    const { config } = this.o;
    const current = this.ahead ?? (await this.sampleBatchAhead(seconds));
    const scoring = current.scored ?? this.scoreInBackground(current.completions);
    const more = config.training.one_step_off_policy && this.step + 2 <= config.training.max_steps;
    this.ahead = more ? await this.sampleBatchAhead(seconds) : null;
    const t0 = performance.now();
    const kept = await scoring;
    seconds.score += (performance.now() - t0) / 1000;
    const oldLogprobs = current.completions.map((c) => c.old_logprobs);
    return { sampled: kept.flat(), kept, rounds: 1, oldLogprobs };
  }

  /** Samples a batch, starts its games, and takes its logprobs before the next update. */
  private async sampleBatchAhead(seconds: Seconds): Promise<AheadBatch<R>> {
    const { config, parts } = this.o;
    const request = this.nextRequest(this.groupsPerStep());
    const t0 = performance.now();
    const completions = await generate(parts.engine, config, request);
    const t1 = performance.now();
    const scored = this.scoreInBackground(completions);
    const { policy } = await parts.engine.logprobs({
      items: completions.map((c) => ({ prompt: c.prompt, completion: c.ids })),
      temperature: config.generation.temperature,
    });
    seconds.generate += (t1 - t0) / 1000;
    seconds.train += (performance.now() - t1) / 1000;
    return {
      completions: completions.map((c, i) => ({ ...c, old_logprobs: policy[i]! })),
      scored,
    };
  }

  private scoreInBackground(completions: UnscoredCompletion[]): Promise<SampledCompletion<R>[][]> {
    const scored = score(this.o.parts, completions, this.o.config.generation.num_generations);
    scored.catch(() => {}); // awaited by the step that trains on it, which then throws
    return scored;
  }

  private async update(
    completions: SampledCompletion<R>[],
    seconds: Seconds,
    sampledLogprobs?: number[][],
  ): Promise<TrainStepReport[]> {
    const { config, parts } = this.o;
    const { training, generation } = config;
    const t0 = performance.now();
    const { advantages } = groupAdvantages(
      completions.map((c) => c.total),
      generation.num_generations,
      training.scale_rewards,
    );
    let oldLogprobs = sampledLogprobs;
    if (!oldLogprobs && training.num_iterations > 1) {
      // The policy that sampled, as the training forward sees it, for the later iterations' ratio.
      ({ policy: oldLogprobs } = await parts.engine.logprobs({
        items: completions.map((c) => ({ prompt: c.prompt, completion: c.ids })),
        temperature: generation.temperature,
      }));
    }
    const items: TrainItem[] = completions.map((c, i) => ({
      prompt: c.prompt,
      completion: c.ids,
      advantage: advantages[i]!,
      truncated: c.truncated,
      ...(oldLogprobs ? { old_logprobs: oldLogprobs[i]! } : {}),
    }));
    const reports: TrainStepReport[] = [];
    for (let iteration = 0; iteration < training.num_iterations; iteration++) {
      reports.push(
        await parts.engine.trainStep({
          items,
          loss: {
            type: training.loss_type,
            epsilon: training.epsilon,
            epsilon_high: training.epsilon_high,
            delta: training.delta,
            beta: training.beta,
            compute_kl: training.compute_kl,
            mask_truncated_completions: training.mask_truncated_completions,
            max_completion_length: generation.max_completion_length,
            temperature: generation.temperature,
          },
          gradient_accumulation_steps: Math.min(training.gradient_accumulation_steps, items.length),
        }),
      );
    }
    seconds.train += (performance.now() - t0) / 1000;
    return reports;
  }

  private logStrategies(sampled: SampledCompletion<R>[]): void {
    const names = this.o.parts.rewards.map((r) => r.name);
    for (const c of sampled) {
      if (!c.extraction.ok) continue;
      this.o.log.strategy({
        step: this.step,
        code: c.extraction.code,
        reward: c.total,
        rewards: Object.fromEntries(names.map((name, f) => [name, c.rewards[f]!])),
        outcome: c.outcome,
        games: c.report.games.map((g, i) => ({
          seed: c.seeds[i]!,
          outcome: g.outcome,
          score: g.score,
          max_tile: g.maxTile,
        })),
      });
    }
  }

  private showSample(sampled: SampledCompletion<R>[]): void {
    const shown = sampled.find((c) => c.extraction.ok) ?? sampled[0];
    if (!shown) return;
    this.o.console.sample({
      step: this.step,
      code: shown.extraction.ok ? shown.extraction.code : null,
      ...(shown.extraction.ok ? {} : { reason: shown.extraction.reason }),
      outcome: shown.outcome,
      reward: shown.total,
      ...(shown.report.games[0] ? { board: shown.report.games[0].board } : {}),
      target: this.o.config.game.target,
    });
  }
}
