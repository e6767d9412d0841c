/**
 * One `rl2048 train` run, end to end: resolve the model folder, start the engine and load the
 * model (and a checkpoint when resuming), render the prompt, start the sandbox pool, run the
 * trainer (Ctrl-C saves and stops), then write the exports asked for and test the trained
 * model the way the seed's test_model does. Everything started here is stopped here.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import YAML from "yaml";
import { ChatTemplate } from "../model/chatTemplate.ts";
import { EngineClient, EngineError } from "../model/engineClient.ts";
import type { LoadParams, LoadResult, SaveFormat } from "../model/engineProtocol.ts";
import { ModelTokenizer } from "../model/tokenizer.ts";
import { extractStrategy } from "../strategy/extract.ts";
import { SandboxPool } from "../strategy/sandboxPool.ts";
import type { StrategyReport } from "../strategy/types.ts";
import {
  listCheckpoints,
  readPendingBatch,
  removeStaleTemps,
  type TrainerState,
} from "./checkpoints.ts";
import type { TrainConfig } from "./config.ts";
import { TrainConsole } from "./console.ts";
import { checkModelFolder, hasMxfp4Experts, ModelFolderError } from "./modelFolder.ts";
import type { Scorer } from "./ports.ts";
import { strategyPrompt } from "./prompt.ts";
import { rewardFunctions } from "./rewards.ts";
import { TrainRng } from "./rng.ts";
import { RunLog, writeFileAtomic } from "./runLog.ts";
import { sampleRound, type SamplingParts } from "./sampling.ts";
import { Trainer, type StopReason } from "./trainer.ts";
import { resolveTinyPolicy } from "./tinyPolicy.ts";

/** A run that cannot go on; the message is one line for the user. */
export class TrainError extends Error {
  override name = "TrainError";
}

export interface Resume {
  checkpoint: string;
  state: TrainerState;
}

function defaultRunName(): string {
  return `run-${new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-")}`;
}

/** The engine's `load` request for this config. */
export function loadParams(config: TrainConfig, modelDir: string): LoadParams {
  const { model, training } = config;
  const warmup = Math.ceil(training.warmup_ratio * training.max_steps);
  return {
    model: modelDir,
    dtype: model.dtype,
    device: model.device,
    seed: config.seed,
    lora: { ...model.lora },
    gradient_checkpointing: model.gradient_checkpointing,
    offload_embeddings: model.offload_embeddings,
    ...(model.cpu_threads ? { cpu_threads: model.cpu_threads } : {}),
    fast: model.fast,
    cuda_graphs: model.cuda_graphs,
    experts: model.load_in_4bit && hasMxfp4Experts(modelDir) ? "mxfp4" : "bf16",
    optim: {
      lr: training.learning_rate,
      weight_decay: training.weight_decay,
      betas: [training.adam_beta1, training.adam_beta2],
      eps: training.adam_epsilon,
      eight_bit: training.optim === "adamw_8bit",
      schedule: training.lr_scheduler_type,
      warmup_steps: warmup,
      total_steps: training.max_steps,
      max_grad_norm: training.max_grad_norm,
    },
  };
}

/** The model folder of a config: `tiny` is the bundled policy, anything else a path. */
export async function modelFolder(config: TrainConfig): Promise<string> {
  const path = config.model.path;
  if (path === null) {
    throw new ModelFolderError(
      "no model: give --model DIR (a Hugging Face folder) or --preset tiny",
    );
  }
  if (path === "tiny") return resolveTinyPolicy(config);
  return checkModelFolder(path);
}

/** The model's chat template around the seed's prompt, as token ids. */
export async function promptIds(config: TrainConfig, modelDir: string, tokenizer: ModelTokenizer) {
  const template = await ChatTemplate.fromFolder(modelDir);
  const text = template.render([{ role: "user", content: strategyPrompt(config.game.keys) }], {
    addGenerationPrompt: true,
    reasoningEffort: config.generation.reasoning_effort,
  });
  return tokenizer.encode(text);
}

/** Starts the engine and loads the model; engine errors become one-line TrainErrors. */
export async function startEngine(
  config: TrainConfig,
  modelDir: string,
  log: (line: string) => void = () => {},
): Promise<EngineClient> {
  const engine = await EngineClient.start({
    python: config.engine.python,
    timeoutMs: config.engine.request_timeout_s * 1000,
  });
  const params = loadParams(config, modelDir);
  log(describeLoaded(await engine.load(params), params));
  if (config.model.load_in_4bit && params.experts !== "mxfp4") {
    console.error("note: the model has no MXFP4 experts; it is loaded in 16-bit");
  }
  return engine;
}

/** One line on the loaded model, and what the first step will take on a GPU. */
export function describeLoaded(info: LoadResult, params: LoadParams): string {
  const count = (n: number) =>
    n >= 1e9
      ? `${(n / 1e9).toFixed(1)}B`
      : n >= 1e6
        ? `${(n / 1e6).toFixed(1)}M`
        : n.toLocaleString("en-US");
  const experts = params.experts === "mxfp4" ? ", MXFP4 experts packed" : "";
  const gib = info.memory.reserved
    ? `, ${(info.memory.reserved / 2 ** 30).toFixed(1)} GiB held`
    : "";
  const line = `loaded on ${info.device} (${info.dtype}${experts}${gib}): ${count(info.params_total)} parameters, ${count(info.params_trainable)} trainable`;
  return params.fast && info.device.startsWith("cuda")
    ? `${line}; the first step compiles the fast paths (two to three minutes on a fresh machine, then cached on disk)`
    : line;
}

export function sandboxScorer(pool: SandboxPool, config: TrainConfig): Scorer<StrategyReport> {
  const { size, target, p4, keys } = config.game;
  return {
    score: (code, seeds) =>
      pool.score(
        code,
        seeds.map((seed) => ({ size, target, p4, keys, seed })),
      ),
  };
}

/**
 * Writes an export through a temporary folder next to `out`, renamed when complete. An existing
 * `out` is an error, or with `replace` (a run's own exports) swapped out once the new one is whole.
 */
export async function writeExport(
  engine: EngineClient,
  format: SaveFormat,
  out: string,
  replace = false,
) {
  const path = resolve(out);
  if (existsSync(path) && !replace) {
    throw new TrainError(`${out} already exists; choose another --out`);
  }
  const temp = `${path}.tmp-${process.pid}`;
  const old = `${path}.old-${process.pid}`;
  rmSync(temp, { recursive: true, force: true });
  try {
    await engine.save({ path: temp, format });
    if (existsSync(path)) renameSync(path, old);
    renameSync(temp, path);
  } finally {
    rmSync(temp, { recursive: true, force: true });
    rmSync(old, { recursive: true, force: true });
  }
  return path;
}

/** The one line a failed run prints (RL2048_DEBUG=1 prints the whole error too). */
export function describeFailure(err: unknown): string {
  if (err instanceof EngineError) {
    const first = err.message.split("\n")[0];
    return err.kind === "engine_died"
      ? `the engine stopped: ${first}`
      : `engine ${err.kind}: ${first}`;
  }
  if (err instanceof Error) return err.message.split("\n")[0] || err.name;
  return String(err);
}

export async function runTraining(config: TrainConfig, resume?: Resume): Promise<StopReason> {
  const runName = resume?.state.run_name ?? config.output.run_name ?? defaultRunName();
  const runDir = resolve(config.output.output_dir, runName);
  if (resume && resume.state.step >= config.training.max_steps) {
    throw new TrainError(
      `${runName} is already at step ${resume.state.step} of ${config.training.max_steps}: give more --steps to go on`,
    );
  }
  if (!resume && listCheckpoints(runDir).length > 0) {
    throw new TrainError(
      `${runDir} already has checkpoints: add --resume, or pick another --run-name`,
    );
  }
  const pending = resume ? readPendingBatch(resume.checkpoint) : null;
  const modelDir = await modelFolder(config);
  const tokenizer = await ModelTokenizer.fromFolder(modelDir);
  const prompt = await promptIds(config, modelDir, tokenizer);
  const length = prompt.length + config.generation.max_completion_length;
  if (length > config.model.max_seq_length) {
    throw new TrainError(
      `the prompt (${prompt.length} tokens) plus generation.max_completion_length (${config.generation.max_completion_length}) exceed model.max_seq_length (${config.model.max_seq_length})`,
    );
  }
  const rewards = rewardFunctions(config);

  mkdirSync(runDir, { recursive: true });
  removeStaleTemps(runDir);
  if (!resume) writeFileAtomic(join(runDir, "config.yaml"), YAML.stringify(config));

  const ui = new TrainConsole(config.training.max_steps);
  ui.log(`run ${runName}: ${runDir}`);
  ui.log(`model ${modelDir}; starting the engine...`);
  let engine: EngineClient | null = null;
  let pool: SandboxPool | null = null;
  let log: RunLog | null = null;
  const onSigint = () => {
    if (!trainer) process.exit(130);
    if (stopping) {
      ui.log("second Ctrl-C: stopping now without saving");
      process.exit(130);
    }
    stopping = true;
    ui.log("Ctrl-C: finishing this step, then saving a checkpoint (Ctrl-C again to quit now)");
    trainer.requestStop();
  };
  let trainer: Trainer<StrategyReport> | null = null;
  let stopping = false;
  process.on("SIGINT", onSigint);
  try {
    engine = await startEngine(config, modelDir, (line) => ui.log(line));
    if (resume) {
      await engine.loadState({ path: resume.checkpoint });
      ui.log(`resumed from ${resume.checkpoint} (step ${resume.state.step})`);
    }
    pool = await SandboxPool.start({
      ...(config.sandbox_workers ? { workers: config.sandbox_workers } : {}),
      limits: { gameSeconds: config.game.time_limit_s },
    });
    log = new RunLog(runDir, {
      tensorboard: config.output.tensorboard,
      ...(resume ? { resumeStep: resume.state.step, best: resume.state.best } : {}),
    });
    const parts: SamplingParts<StrategyReport> = {
      engine,
      codec: { encode: (t) => tokenizer.encode(t), decode: (ids) => tokenizer.decode(ids) },
      scorer: sandboxScorer(pool, config),
      rewards,
      extract: extractStrategy,
    };
    trainer = new Trainer({
      config,
      runName,
      runDir,
      parts,
      promptIds: prompt,
      log,
      console: ui,
      ...(resume ? { resume: { ...resume.state, pending } } : {}),
    });
    const reason = await trainer.run();
    if (reason === "finished") {
      for (const format of config.output.export_formats) {
        const out = await writeExport(engine, format, join(runDir, `export-${format}`), true);
        ui.log(`exported ${format}: ${out}`);
      }
      if (config.output.final_test_games > 0) await finalTest(parts, config, prompt, runDir, ui);
    }
    return reason;
  } finally {
    process.off("SIGINT", onSigint);
    log?.close();
    await pool?.close();
    await engine?.shutdown();
  }
}

/** The seed's test_model: the trained model writes one strategy and it plays. */
async function finalTest(
  parts: SamplingParts<StrategyReport>,
  config: TrainConfig,
  prompt: number[],
  runDir: string,
  ui: TrainConsole,
): Promise<void> {
  const rng = TrainRng.fromSeed(config.seed + 1);
  const gameSeeds = Array.from({ length: config.output.final_test_games }, () => rng.seed());
  const single = { ...config, generation: { ...config.generation, num_generations: 1 } };
  const { groups } = await sampleRound(parts, single, {
    promptIds: prompt,
    groups: 1,
    sampleSeed: rng.seed(),
    gameSeeds,
  });
  const c = groups[0]![0]!;
  const wins = c.report.games.filter((g) => g.outcome === "success").length;
  ui.sample({
    title: "final test: the trained model's strategy",
    step: config.training.max_steps,
    code: c.extraction.ok ? c.extraction.code : null,
    ...(c.extraction.ok ? {} : { reason: c.extraction.reason }),
    outcome: c.outcome,
    reward: c.total,
    ...(c.report.games[0] ? { board: c.report.games[0].board } : {}),
    target: config.game.target,
  });
  ui.log(
    c.extraction.ok
      ? `final test: ${wins}/${c.report.games.length} games won`
      : `final test: the model wrote no strategy (${c.extraction.reason})`,
  );
  const result = {
    text: c.text,
    code: c.extraction.ok ? c.extraction.code : null,
    reason: c.extraction.ok ? null : c.extraction.reason,
    rewards: Object.fromEntries(parts.rewards.map((r, f) => [r.name, c.rewards[f]])),
    games: c.report.games.map((g, i) => ({
      seed: gameSeeds[i],
      outcome: g.outcome,
      score: g.score,
      max_tile: g.maxTile,
    })),
  };
  writeFileSync(join(runDir, "final_test.json"), JSON.stringify(result, null, 2) + "\n");
}
