/**
 * The `tiny` model: the bundled tiny policy (a small gpt-oss warm-started to write
 * strategies, src/policy/tinyPolicy.ts), built on first use and cached. It answers the
 * trainer's own prompt with the run's keys; its seed is fixed, so every run shares one folder.
 */
import { TinyPolicyError, tinyPolicy } from "../policy/tinyPolicy.ts";
import type { TrainConfig } from "./config.ts";
import { ModelFolderError } from "./modelFolder.ts";
import { strategyPrompt } from "./prompt.ts";

export async function resolveTinyPolicy(config: TrainConfig): Promise<string> {
  const keys = config.game.keys;
  try {
    return await tinyPolicy(
      {
        keys,
        prompt: strategyPrompt(keys),
        reasoning_effort: config.generation.reasoning_effort,
      },
      {
        python: config.engine.python,
        onProgress: (p) => {
          if (p.step !== undefined && (p.step === 1 || p.step % 50 === 0 || p.step === p.steps)) {
            console.error(
              `building the tiny policy (once): warm-start step ${p.step}/${p.steps}, loss ${p.loss}`,
            );
          }
        },
      },
    );
  } catch (err) {
    if (err instanceof TinyPolicyError) throw new ModelFolderError(err.message);
    throw err;
  }
}
