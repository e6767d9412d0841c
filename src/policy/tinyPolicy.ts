/**
 * The tiny policy: a gpt-oss of toy size, warm-started on the strategy corpus so that it
 * writes 2048 strategies of very different quality (the default model on a CPU, and the
 * proof that GRPO learns). Built once per settings by the engine's builder
 * (`python -m rl2048_engine.tiny_policy`: tokenizer, random weights, `sft_step`) and cached
 * in `.cache/tiny-policy-<hash>/`; the same settings always give the same folder.
 */
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { generateCorpus } from "../corpus/corpus.ts";
import { KEY_PRESETS, type KeyPreset } from "../game/keys.ts";
import { REPO_ROOT, engineEnv, enginePython } from "../model/python.ts";

export const tinyPolicySettings = z.strictObject({
  seed: z.number().int().default(0),
  /** The prompt the answers are written to (the trainer's strategy prompt). */
  prompt: z.string().min(1),
  keys: z.enum(Object.keys(KEY_PRESETS) as [KeyPreset, ...KeyPreset[]]).default("wasd"),
  reasoning_effort: z.enum(["low", "medium", "high"]).default("low"),
  /** Programs in the warm-start corpus. */
  corpus_size: z.number().int().positive().default(2000),
  sft_steps: z.number().int().positive().default(300),
  sft_batch: z.number().int().positive().default(32),
  sft_lr: z.number().positive().default(3e-3),
});
export type TinyPolicySettings = z.infer<typeof tinyPolicySettings>;
export type TinyPolicyInput = z.input<typeof tinyPolicySettings>;

/** What the builder reports while it works (one JSON object per line on its stderr). */
export interface TinyPolicyProgress {
  phase?: string;
  step?: number;
  steps?: number;
  loss?: number;
  seconds?: number;
}

export interface TinyPolicyOptions {
  /** Where the folders are cached (default `<repo>/.cache`). */
  cacheDir?: string;
  python?: string | null;
  onProgress?: (progress: TinyPolicyProgress) => void;
}

export class TinyPolicyError extends Error {
  override name = "TinyPolicyError";
}

/** What the builder trains on: the prompt and one answer per corpus program. */
function trainingData(settings: TinyPolicySettings) {
  const corpus = generateCorpus({
    n: settings.corpus_size,
    seed: settings.seed,
    keys: KEY_PRESETS[settings.keys],
  });
  return {
    prompt: settings.prompt,
    reasoning_effort: settings.reasoning_effort,
    answers: corpus.map((r) => r.text),
  };
}

/** The cache key: everything the folder depends on (data, training settings, builder code). */
function cacheKey(settings: TinyPolicySettings, data: ReturnType<typeof trainingData>): string {
  const hash = createHash("sha256").update(JSON.stringify({ settings, data }));
  for (const file of [
    "engine/rl2048_engine/tiny_policy.py",
    "engine/rl2048_engine/init_model.py",
    "engine/rl2048_engine/templates/tokenizer.py",
  ]) {
    hash.update(readFileSync(join(REPO_ROOT, file)));
  }
  return hash.digest("hex").slice(0, 16);
}

/** The folder of the tiny policy for these settings, built first when it is not cached. */
export async function tinyPolicy(
  input: TinyPolicyInput,
  options: TinyPolicyOptions = {},
): Promise<string> {
  const settings = tinyPolicySettings.parse(input);
  const data = trainingData(settings);
  const cacheDir = options.cacheDir ?? join(REPO_ROOT, ".cache");
  const folder = join(cacheDir, `tiny-policy-${cacheKey(settings, data)}`);
  if (existsSync(join(folder, "tiny_policy.json"))) return folder;

  mkdirSync(cacheDir, { recursive: true });
  const work = mkdtempSync(join(cacheDir, ".tiny-policy-data-"));
  try {
    const dataFile = join(work, "data.json");
    writeFileSync(dataFile, JSON.stringify(data));
    await runBuilder(
      options.python ?? null,
      [
        ...["--data", dataFile, "--out", folder, "--seed", String(settings.seed)],
        ...["--steps", String(settings.sft_steps), "--batch", String(settings.sft_batch)],
        ...["--lr", String(settings.sft_lr)],
      ],
      options.onProgress,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (!existsSync(join(folder, "tiny_policy.json"))) {
    throw new TinyPolicyError(`the tiny policy builder finished without writing ${folder}`);
  }
  return folder;
}

function runBuilder(
  python: string | null,
  args: string[],
  onProgress?: (progress: TinyPolicyProgress) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(enginePython(python), ["-m", "rl2048_engine.tiny_policy", ...args], {
      env: engineEnv(),
      stdio: ["ignore", "ignore", "pipe"],
    });
    let pending = "";
    let tail = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        if (line.startsWith("{")) {
          try {
            onProgress?.(JSON.parse(line) as TinyPolicyProgress);
            continue;
          } catch {
            // not a progress line: keep it for the error message
          }
        }
        tail = (tail + line + "\n").slice(-4000);
      }
    });
    child.on("error", (err) =>
      reject(new TinyPolicyError(`cannot start the tiny policy builder: ${err.message}`)),
    );
    child.on("close", (code) => {
      if (code === 0) resolve();
      else {
        const last = tail.trim().split("\n").filter(Boolean).pop() ?? "no output";
        reject(new TinyPolicyError(`the tiny policy builder failed (exit ${code}): ${last}`));
      }
    });
  });
}
