/**
 * Held-out evaluation of a policy: sample many completions from a model (the warm start, or
 * a training checkpoint loaded over it), play every extracted program on the same held-out
 * games in the sandbox, and summarize their quality with standard errors.
 */
import { gameSpecs, playTexts, summarizeQuality, type Quality } from "../corpus/quality.ts";
import { EngineClient } from "../model/engineClient.ts";
import { ModelTokenizer } from "../model/tokenizer.ts";
import { SandboxPool } from "../strategy/sandboxPool.ts";
import type { TrainConfig } from "../train/config.ts";
import { loadParams, promptIds } from "../train/session.ts";

export interface HeldOutOptions {
  config: TrainConfig;
  modelDir: string;
  /** A checkpoint folder (`checkpoint-<step>/`) to load over the model; none: the warm start. */
  checkpoint?: string;
  samples: number;
  gamesPerProgram: number;
  /** Games use seeds firstGameSeed, firstGameSeed + 1, ... (far from the training seeds). */
  firstGameSeed: number;
  samplingSeed: number;
  onProgress?: (done: number, total: number) => void;
}

export interface HeldOutResult {
  quality: Quality;
  /** Share of completions from which a strategy could be extracted. */
  extracted: number;
  completions: string[];
}

export async function heldOutEvaluation(options: HeldOutOptions): Promise<HeldOutResult> {
  const { config, modelDir } = options;
  const tokenizer = await ModelTokenizer.fromFolder(modelDir);
  const prompt = await promptIds(config, modelDir, tokenizer);
  const engine = await EngineClient.start({ python: config.engine.python });
  let texts: string[];
  try {
    await engine.load(loadParams(config, modelDir));
    if (options.checkpoint) await engine.loadState({ path: options.checkpoint });
    const { completions } = await engine.generate({
      prompts: [prompt],
      n: options.samples,
      max_new_tokens: config.generation.max_completion_length,
      temperature: config.generation.temperature,
      top_p: 1,
      top_k: 0,
      min_p: 0,
      seed: options.samplingSeed,
    });
    texts = completions.map((c) => tokenizer.decode(c.ids));
  } finally {
    await engine.shutdown();
  }
  const { size, target, p4, keys, time_limit_s } = config.game;
  const specs = gameSpecs(
    { size, target, p4, keys },
    options.gamesPerProgram,
    options.firstGameSeed,
  );
  const pool = await SandboxPool.start({ limits: { gameSeconds: time_limit_s } });
  let done = 0;
  try {
    const results = await playTexts(pool, texts, specs, () =>
      options.onProgress?.(++done, texts.length),
    );
    return {
      quality: summarizeQuality(results),
      extracted: results.filter((r) => r.length > 0).length / texts.length,
      completions: texts,
    };
  } finally {
    await pool.close();
  }
}
