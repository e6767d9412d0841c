/**
 * What the trainer needs from the other parts, as narrow interfaces: the engine (src/model's
 * client), the tokenizer, the sandbox pool and the rewards. The real ones are wired in by
 * session.ts; keeping the trainer to these makes its data flow easy to follow.
 */
import type { TrainStepReport } from "../rl/metrics.ts";

export interface GeneratedCompletion {
  prompt_index: number;
  ids: number[];
  logprobs: number[];
  finish_reason: "stop" | "length";
}

export interface GenerateRequest {
  prompts: number[][];
  n: number;
  max_new_tokens: number;
  temperature: number;
  top_p: number;
  top_k: number;
  min_p: number;
  seed?: number;
}

export interface TrainItem {
  prompt: number[];
  completion: number[];
  advantage: number;
  old_logprobs?: number[];
  truncated: boolean;
}

export interface LossOptions {
  type: "grpo" | "bnpo" | "dr_grpo" | "dapo";
  epsilon: number;
  epsilon_high: number | null;
  delta: number | null;
  beta: number;
  compute_kl: boolean;
  mask_truncated_completions: boolean;
  max_completion_length: number;
  temperature: number;
}

export interface PolicyEngine {
  generate(request: GenerateRequest): Promise<{ completions: GeneratedCompletion[] }>;
  logprobs(request: {
    items: { prompt: number[]; completion: number[] }[];
    temperature: number;
  }): Promise<{ policy: number[][] }>;
  trainStep(request: {
    items: TrainItem[];
    loss: LossOptions;
    gradient_accumulation_steps: number;
  }): Promise<TrainStepReport & { step: number }>;
  save(request: { path: string; format: string }): Promise<{ path: string; files: string[] }>;
}

export interface TextCodec {
  encode(text: string): number[];
  /** Decodes with special tokens kept, so the harmony channels stay visible to extraction. */
  decode(ids: number[]): string;
}

export interface GameRun {
  outcome: string;
  score: number;
  maxTile: number;
  board: number[][];
}

/** What the sandbox reports for one completion's strategy over its games. */
export interface ScoreReport {
  games: GameRun[];
}

export interface Scorer<R extends ScoreReport = ScoreReport> {
  /** Plays one game per seed with `code` (null: nothing to run); games in seed order. */
  score(code: string | null, seeds: number[]): Promise<R>;
}

export type Extraction = { ok: true; code: string } | { ok: false; reason: string };

export interface RewardFunction<R extends ScoreReport = ScoreReport> {
  name: string;
  weight: number;
  reward(input: { extraction: Extraction; report: R }): number;
}
