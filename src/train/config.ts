/**
 * The training configuration: one zod schema holds every option and its default.
 *
 * A run's config is built in layers, each overriding the one before:
 *   schema defaults <- preset (configs/<name>.yaml) <- --config FILE (YAML or JSON) <- flags.
 * Names follow TRL's GRPOConfig where TRL has one. An unknown or invalid field fails with its
 * path and what was expected.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { z } from "zod";
import { gameOptionsSchema } from "../game/options.ts";

export const PRESETS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../configs");

const positiveInt = z.int().positive();

const loraSchema = z.strictObject({
  rank: positiveInt.default(4),
  alpha: z.number().positive().default(8),
  dropout: z.number().min(0).lt(1).default(0),
  target_modules: z.array(z.string()).default(["q_proj", "k_proj", "v_proj", "o_proj"]),
  /** gpt-oss experts through PEFT, e.g. mlp.experts.gate_up_proj, mlp.experts.down_proj. */
  target_parameters: z.array(z.string()).default([]),
});

const modelSchema = z.strictObject({
  /** A Hugging Face model folder, or `tiny` for the bundled tiny policy. */
  path: z.string().min(1).nullable().default(null),
  dtype: z.enum(["bfloat16", "float16", "float32"]).default("bfloat16"),
  device: z.string().default("auto"),
  /** Keep an MXFP4 folder's experts packed (4-bit) on the device (engine `experts: mxfp4`). */
  load_in_4bit: z.boolean().default(false),
  /** gpt-oss: the engine's fast paths (CUDA-graph decode, fused GRPO step; engine/README.md). */
  fast: z.boolean().default(false),
  /** With `fast` on a GPU: replay the GRPO update (with its reference forward) and the logprobs
   * pass from CUDA graphs (faster; keeps their temporaries reserved between steps, about 0.9 GiB
   * for gpt-oss-20b in MXFP4 mode). The decode step replays from one either way. */
  cuda_graphs: z.boolean().default(true),
  max_seq_length: positiveInt.default(768),
  offload_embeddings: z.boolean().default(false),
  gradient_checkpointing: z.boolean().default(false),
  /** torch threads in the engine; null leaves torch's default (1 is fastest for tiny models). */
  cpu_threads: positiveInt.nullable().default(null),
  lora: loraSchema.prefault({}),
});

const { size, target, p4, keys } = gameOptionsSchema.shape;
const gameSchema = z.strictObject({
  size,
  target,
  p4,
  keys,
  /** Wall time of one game in seconds (the seed: 5). */
  time_limit_s: z.number().positive().default(5),
  /** Games per completion, each on its own seed shared by the whole step (K seeds). */
  seeds_per_completion: positiveInt.default(1),
});

const rewardsSchema = z
  .strictObject({
    functions: z
      .array(z.string())
      .min(1)
      .default(["function_works", "no_cheating", "strategy_succeeds"]),
    /** One weight per function; null weighs each 1 (TRL's reward_weights). */
    weights: z.array(z.number()).nullable().default(null),
  })
  .refine((r) => r.weights === null || r.weights.length === r.functions.length, {
    error: "weights must have one value per reward function",
    path: ["weights"],
  });

const generationSchema = z.strictObject({
  num_generations: z.int().min(2, { error: "GRPO needs at least 2 generations" }).default(2),
  max_completion_length: positiveInt.default(200),
  temperature: z.number().positive().default(1),
  top_p: z.number().gt(0).max(1).default(1),
  top_k: z.int().min(0).default(0),
  min_p: z.number().min(0).max(1).default(0),
  reasoning_effort: z.enum(["low", "medium", "high"]).default("low"),
});

const trainingSchema = z
  .strictObject({
    max_steps: positiveInt.default(1000),
    /**
     * Prompts per micro-batch. A step samples per_device_train_batch_size x
     * gradient_accumulation_steps prompts, num_generations completions each, and takes one
     * optimizer step over them (the seed: 1 x 4 prompts, 8 completions).
     */
    per_device_train_batch_size: positiveInt.default(1),
    gradient_accumulation_steps: positiveInt.default(4),
    learning_rate: z.number().min(0).default(5e-5),
    lr_scheduler_type: z.enum(["linear", "constant"]).default("linear"),
    warmup_ratio: z.number().min(0).max(1).default(0.1),
    weight_decay: z.number().min(0).default(0.001),
    optim: z.enum(["adamw_8bit", "adamw_torch"]).default("adamw_8bit"),
    adam_beta1: z.number().min(0).lt(1).default(0.9),
    adam_beta2: z.number().min(0).lt(1).default(0.99),
    adam_epsilon: z.number().positive().default(1e-8),
    max_grad_norm: z.number().positive().nullable().default(1),
    loss_type: z.enum(["grpo", "bnpo", "dr_grpo", "dapo"]).default("bnpo"),
    epsilon: z.number().min(0).default(0.2),
    epsilon_high: z.number().min(0).nullable().default(0.28),
    delta: z.number().gt(1).nullable().default(1.5),
    beta: z.number().min(0).default(0),
    /** Log `kl` at beta 0 too, at the cost of a reference forward per update (TRL skips it). */
    compute_kl: z.boolean().default(true),
    mask_truncated_completions: z.boolean().default(true),
    scale_rewards: z.enum(["group", "batch", "none"]).default("group"),
    /** Optimizer updates per sampled batch (TRL's num_iterations, GRPO's mu). */
    num_iterations: positiveInt.default(1),
    /** Drop groups whose rewards are all equal and sample again (DAPO). */
    dynamic_sampling: z.boolean().default(false),
    /** Most sampling rounds per step when dynamic sampling drops groups. */
    max_sampling_rounds: positiveInt.default(4),
    /**
     * Sample the next step's batch before this step's update, so that its games are played
     * while the GPU works on: rewards stop adding to the step. Each update then learns from
     * completions sampled one update earlier, its ratio taken against their logprobs under the
     * policy that sampled them (one more logprobs pass a step). Not with dynamic_sampling.
     */
    one_step_off_policy: z.boolean().default(false),
  })
  .refine((t) => !(t.one_step_off_policy && t.dynamic_sampling), {
    error: "needs dynamic_sampling off (its extra rounds wait for rewards)",
    path: ["one_step_off_policy"],
  });

const outputSchema = z.strictObject({
  output_dir: z.string().default("outputs"),
  /** The run's folder under output_dir; null names it after the start time. */
  run_name: z.string().min(1).nullable().default(null),
  save_steps: positiveInt.default(100),
  /** Checkpoints kept (the oldest are deleted); null keeps all. */
  save_total_limit: positiveInt.nullable().default(null),
  /** Print one sampled completion with its outcome and board every N steps (0: never). */
  log_completions_steps: z.int().min(0).default(5),
  tensorboard: z.boolean().default(true),
  /** Exports written at the end of the run. */
  export_formats: z.array(z.enum(["lora", "merged_16bit", "mxfp4"])).default([]),
  /** At the end, the trained model writes one strategy and it plays this many games. */
  final_test_games: z.int().min(0).default(1),
});

const engineSchema = z.strictObject({
  /** Python that runs the engine; null uses the project's .venv. */
  python: z.string().nullable().default(null),
  /** Seconds one engine request may take before the run stops with an error. */
  request_timeout_s: z.number().positive().default(3600),
});

export const trainConfigSchema = z.strictObject({
  model: modelSchema.prefault({}),
  game: gameSchema.prefault({}),
  rewards: rewardsSchema.prefault({}),
  generation: generationSchema.prefault({}),
  training: trainingSchema.prefault({}),
  output: outputSchema.prefault({}),
  engine: engineSchema.prefault({}),
  /** Sandbox workers; null uses every core. */
  sandbox_workers: positiveInt.nullable().default(null),
  /** Seeds the trainer's generator (game and sampling seeds) and the engine. */
  seed: z.int().default(3407),
});

export type TrainConfig = z.infer<typeof trainConfigSchema>;
export type ConfigInput = Record<string, unknown>;

/** Thrown for any config problem; the message is one line that names the field. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

function formatIssue(issue: z.core.$ZodIssue, source: string): string {
  const path = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    const keys = issue.keys.map((k) => (path ? `${path}.${k}` : k));
    return `${source}: unknown field ${keys.join(", ")}`;
  }
  return `${source}: ${path || "(root)"}: ${issue.message}`;
}

/** Validates a layered config object; throws ConfigError naming the first bad field. */
export function parseConfig(input: unknown, source = "config"): TrainConfig {
  const result = trainConfigSchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(formatIssue(result.error.issues[0] as z.core.$ZodIssue, source));
  }
  return result.data;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Deep merge of plain objects; arrays and scalars in `over` replace those in `base`. */
export function mergeConfig(base: ConfigInput, over: ConfigInput): ConfigInput {
  const out: ConfigInput = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    out[key] = isPlainObject(prev) && isPlainObject(value) ? mergeConfig(prev, value) : value;
  }
  return out;
}

/** Reads a YAML or JSON config file into a plain object. */
export function readConfigFile(path: string): ConfigInput {
  if (!existsSync(path)) throw new ConfigError(`config file not found: ${path}`);
  let data: unknown;
  try {
    const text = readFileSync(path, "utf8");
    data = extname(path) === ".json" ? JSON.parse(text) : YAML.parse(text);
  } catch (err) {
    const reason = (err as Error).message.split("\n")[0];
    throw new ConfigError(
      `${path}: not valid ${extname(path) === ".json" ? "JSON" : "YAML"}: ${reason}`,
    );
  }
  if (data === null || data === undefined) return {};
  if (!isPlainObject(data)) throw new ConfigError(`${path}: expected a mapping of options`);
  return data;
}

export function presetNames(): string[] {
  return ["seed", "tiny"];
}

export function readPreset(name: string): ConfigInput {
  const path = join(PRESETS_DIR, `${name}.yaml`);
  if (!presetNames().includes(name) || !existsSync(path)) {
    throw new ConfigError(`unknown preset ${name} (presets: ${presetNames().join(", ")})`);
  }
  return readConfigFile(path);
}

/** `a.b.c=value` -> {a: {b: {c: value}}}; the value is read as YAML (numbers, booleans, lists). */
export function parseSetFlag(assignment: string): ConfigInput {
  const eq = assignment.indexOf("=");
  if (eq <= 0) throw new ConfigError(`--set ${assignment}: expected key=value`);
  const path = assignment.slice(0, eq).trim().split(".");
  if (path.some((part) => part === "")) throw new ConfigError(`--set ${assignment}: bad key`);
  const raw = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = raw === "" ? "" : YAML.parse(raw);
  } catch {
    value = raw;
  }
  return path.reduceRight<unknown>((inner, key) => ({ [key]: inner }), value) as ConfigInput;
}

export interface ConfigSources {
  preset?: string;
  file?: string;
  /** `--set key=value` assignments, applied in order. */
  sets?: readonly string[];
  /** Explicit flags already shaped as a partial config (applied last). */
  flags?: ConfigInput;
}

/**
 * Builds the run's config from its layers. Without a preset, a config file stands on the schema
 * defaults alone, and no file means the `tiny` preset. `base` (a checkpoint's saved config)
 * replaces preset and file when resuming.
 */
export function resolveConfig(sources: ConfigSources, base?: ConfigInput): TrainConfig {
  const preset = sources.preset ?? (sources.file ? undefined : "tiny");
  let layered: ConfigInput = base ?? (preset ? readPreset(preset) : {});
  if (sources.file && !base) layered = mergeConfig(layered, readConfigFile(sources.file));
  for (const assignment of sources.sets ?? []) {
    layered = mergeConfig(layered, parseSetFlag(assignment));
  }
  if (sources.flags) layered = mergeConfig(layered, sources.flags);
  return parseConfig(layered, sources.file ?? "config");
}
