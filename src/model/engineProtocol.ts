/**
 * The engine's RPC (engine/README.md, protocol 1) as TypeScript types: the parameters we send
 * and zod schemas for the results we read, so a malformed reply fails with a clear message.
 */
import { z } from "zod";

export const PROTOCOL_VERSION = 1;

/** Error kinds the engine sends. */
export const ENGINE_ERROR_KINDS = [
  "bad_request",
  "not_loaded",
  "model_folder",
  "out_of_memory",
  "internal",
] as const;

/** Error kinds the client adds: the engine could not start, died, went silent or spoke nonsense. */
export const CLIENT_ERROR_KINDS = ["spawn", "engine_died", "timeout", "protocol"] as const;

export type EngineErrorKind =
  (typeof ENGINE_ERROR_KINDS)[number] | (typeof CLIENT_ERROR_KINDS)[number];

export const replySchema = z.union([
  z.object({ id: z.number(), result: z.record(z.string(), z.unknown()) }),
  z.object({
    id: z.number().nullable(),
    error: z.object({ kind: z.enum(ENGINE_ERROR_KINDS), message: z.string() }),
  }),
]);

/** GPU memory in bytes (absent without a GPU); the peaks since the previous train_step. */
const memory = z.object({
  allocated: z.number().optional(),
  peak: z.number().optional(),
  reserved: z.number().optional(),
  peak_reserved: z.number().optional(),
  free: z.number().optional(),
  total: z.number().optional(),
});

export const infoResult = z.object({
  protocol: z.number(),
  engine_version: z.string(),
  python: z.string(),
  torch: z.string(),
  transformers: z.string(),
  peft: z.string(),
  device: z.string(),
  cuda: z.string().nullable(),
  memory,
});
export type InfoResult = z.infer<typeof infoResult>;

export interface LoraParams {
  rank: number;
  alpha: number;
  dropout?: number;
  target_modules?: string[];
  target_parameters?: string[];
}

export interface OptimParams {
  lr?: number;
  weight_decay?: number;
  betas?: [number, number];
  eps?: number;
  eight_bit?: boolean;
  schedule?: "linear" | "constant";
  warmup_steps?: number;
  total_steps?: number;
  max_grad_norm?: number | null;
}

export interface LoadParams {
  model: string;
  dtype?: "bfloat16" | "float16" | "float32";
  device?: string;
  seed?: number;
  lora?: LoraParams | null;
  full_finetune?: boolean;
  gradient_checkpointing?: boolean;
  offload_embeddings?: boolean;
  optim?: OptimParams;
  /** torch threads (1 is fastest for tiny models on a busy CPU). */
  cpu_threads?: number;
  /** gpt-oss: CUDA-graph decode and the fused GRPO step. */
  fast?: boolean;
  /** With `fast` on CUDA: the GRPO update and the logprobs pass replayed from CUDA graphs (default true). */
  cuda_graphs?: boolean;
  /** `mxfp4`: an MXFP4 folder's experts stay packed on the device. */
  experts?: "bf16" | "mxfp4";
}

export const loadResult = z.object({
  params_total: z.number(),
  params_trainable: z.number(),
  vocab_size: z.number(),
  stop_token_ids: z.array(z.number()),
  device: z.string(),
  dtype: z.string(),
  model_type: z.string().optional(),
  mxfp4_dequantized: z.boolean().optional(),
  embeddings_offloaded: z.boolean().optional(),
  optimizer: z.string().nullable().optional(),
  memory,
});
export type LoadResult = z.infer<typeof loadResult>;

export interface GenerateParams {
  prompts: number[][];
  n?: number;
  max_new_tokens: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  stop_token_ids?: number[] | null;
  seed?: number | null;
}

export const completion = z.object({
  prompt_index: z.number(),
  ids: z.array(z.number()),
  logprobs: z.array(z.number()),
  finish_reason: z.enum(["stop", "length"]),
});
export type Completion = z.infer<typeof completion>;
export const generateResult = z.object({ completions: z.array(completion) });
export type GenerateResult = z.infer<typeof generateResult>;

export interface ScoredItem {
  prompt: number[];
  completion: number[];
}

export interface LogprobsParams {
  items: ScoredItem[];
  reference?: boolean;
  temperature?: number;
}

export const logprobsResult = z.object({
  policy: z.array(z.array(z.number())),
  reference: z.array(z.array(z.number())).optional(),
});
export type LogprobsResult = z.infer<typeof logprobsResult>;

export interface GrpoItem extends ScoredItem {
  advantage: number;
  old_logprobs?: number[] | null;
  truncated?: boolean;
}

export interface LossParams {
  type?: "grpo" | "bnpo" | "dr_grpo" | "dapo";
  epsilon?: number;
  epsilon_high?: number | null;
  delta?: number | null;
  beta?: number;
  mask_truncated_completions?: boolean;
  max_completion_length?: number | null;
  temperature?: number;
  /** Report kl at beta 0 too (a reference forward more); default false, as TRL. */
  compute_kl?: boolean;
}

export interface TrainStepParams {
  items: GrpoItem[];
  loss?: LossParams;
  gradient_accumulation_steps?: number;
}

export const trainStepResult = z.object({
  loss: z.number(),
  kl: z.number(),
  entropy: z.number(),
  clip_ratio: z.object({ low_mean: z.number(), high_mean: z.number(), region_mean: z.number() }),
  grad_norm: z.number(),
  learning_rate: z.number(),
  step: z.number(),
  memory: memory.optional(),
});
export type TrainStepResult = z.infer<typeof trainStepResult>;

export interface SftStepParams {
  items: ScoredItem[];
  gradient_accumulation_steps?: number;
}

export const sftStepResult = z.object({
  loss: z.number(),
  grad_norm: z.number(),
  learning_rate: z.number(),
  step: z.number(),
});
export type SftStepResult = z.infer<typeof sftStepResult>;

export type SaveFormat = "checkpoint" | "lora" | "merged_16bit" | "mxfp4";

export interface SaveParams {
  path: string;
  format: SaveFormat;
}

export const saveResult = z.object({ path: z.string(), files: z.array(z.string()) });
export type SaveResult = z.infer<typeof saveResult>;

export const loadStateResult = z.object({ step: z.number() });
export type LoadStateResult = z.infer<typeof loadStateResult>;
