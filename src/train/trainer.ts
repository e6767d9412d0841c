/**
 * The GRPO loop. Each step:
 *   sample prompts x num_generations completions (sampling.ts) -> drop groups whose rewards
 *   are all equal and sample again, up to max_sampling_rounds (dynamic sampling, optional)
 *   -> group advantages (src/rl) -> num_iterations engine train_steps -> metrics, strategies,
 *   console -> a checkpoint every save_steps (and at the end, or when asked to stop).
 */
import { groupAdvantages } from "../rl/advantages.ts";
import { fillBatch } from "../rl/dynamicSampling.ts";
import { stepMetrics, type TrainStepReport } from "../rl/metrics.ts";
import { pruneCheckpoints, saveCheckpoint, type TrainerState } from "./checkpoints.ts";
import type { TrainConfig } from "./config.ts";
import type { TrainConsole } from "./console.ts";
import type { ScoreReport, TrainItem } from "./ports.ts";
import { TrainRng } from "./rng.ts";
import type { RunLog } from "./runLog.ts";
import { sampleRound, type SampledCompletion, type SamplingParts } from "./sampling.ts";

export interface TrainerOptions<R extends ScoreReport> {
  config: TrainConfig;
  runName: string;
  runDir: string;
  parts: SamplingParts<R>;
  promptIds: number[];
  log: RunLog;
  console: TrainConsole;
  /** Where to continue from; a fresh run starts at step 0. */
  resume?: Pick<TrainerState, "step" | "data_position" | "rng_state">;
}

export type StopReason = "finished" | "interrupted";

export class Trainer<R extends ScoreReport> {
  step: number;
  dataPosition: number;
  private rng: TrainRng;
  private stopRequested = false;

  constructor(private readonly o: TrainerOptions<R>) {
    this.step = o.resume?.step ?? 0;
    this.dataPosition = o.resume?.data_position ?? 0;
    this.rng = o.resume ? TrainRng.fromState(o.resume.rng_state) : TrainRng.fromSeed(o.config.seed);
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
    });
    pruneCheckpoints(this.o.runDir, this.o.config.output.save_total_limit);
    this.o.console.log(`saved ${path}`);
    return path;
  }

  private async trainOneStep(): Promise<void> {
    const { config, parts } = this.o;
    const { training, generation } = config;
    const groupSize = generation.num_generations;
    const wanted = training.per_device_train_batch_size * training.gradient_accumulation_steps;
    const rounds = training.dynamic_sampling ? training.max_sampling_rounds : 1;

    let kept: SampledCompletion<R>[][] = [];
    const sampled: SampledCompletion<R>[] = [];
    const seconds = { generate: 0, score: 0, train: 0 };
    let round = 0;
    while (round < rounds && kept.length < wanted) {
      round++;
      const groups = training.dynamic_sampling ? wanted - kept.length : wanted;
      const gameSeeds = Array.from({ length: config.game.seeds_per_completion }, () =>
        this.rng.seed(),
      );
      const result = await sampleRound(parts, config, {
        promptIds: this.o.promptIds,
        groups,
        sampleSeed: this.rng.seed(),
        gameSeeds,
      });
      this.dataPosition += groups;
      seconds.generate += result.seconds.generate;
      seconds.score += result.seconds.score;
      const flat = result.groups.flat();
      sampled.push(...flat);
      kept = training.dynamic_sampling
        ? fillBatch(
            kept,
            result.groups,
            flat.map((c) => c.total),
            groupSize,
            wanted,
          )
        : result.groups;
    }

    const updates = kept.length > 0 ? await this.update(kept.flat(), seconds) : [];
    this.step++;

    const metrics = stepMetrics({
      functionNames: parts.rewards.map((r) => r.name),
      weights: parts.rewards.map((r) => r.weight),
      groupSize,
      scale: training.scale_rewards,
      completions: sampled.map((c) => ({
        rewards: c.rewards,
        length: c.ids.length,
        truncated: c.truncated,
        outcome: c.outcome,
      })),
      updates,
      seconds,
      samplingRounds: round,
      groupsTrained: kept.length,
    });
    this.o.log.metrics(this.step, metrics);
    this.logStrategies(sampled);
    this.o.console.step(this.step, metrics);
    const every = config.output.log_completions_steps;
    if (every > 0 && this.step % every === 0) this.showSample(sampled);
  }

  private async update(
    completions: SampledCompletion<R>[],
    seconds: { train: number },
  ): Promise<TrainStepReport[]> {
    const { config, parts } = this.o;
    const { training, generation } = config;
    const t0 = performance.now();
    const { advantages } = groupAdvantages(
      completions.map((c) => c.total),
      generation.num_generations,
      training.scale_rewards,
    );
    let oldLogprobs: number[][] | undefined;
    if (training.num_iterations > 1) {
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
