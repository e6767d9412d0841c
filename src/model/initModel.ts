/**
 * Runs `python -m rl2048_engine.init_model`: writes a gpt-oss folder with random weights
 * (see engine/rl2048_engine/init_model.py) and reports progress tensor by tensor.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { z } from "zod";
import { enginePython, engineEnv } from "./python.ts";

export const PRESETS = ["tiny", "20b"] as const;
export type Preset = (typeof PRESETS)[number];

export interface InitModelOptions {
  preset: Preset;
  out: string;
  mxfp4?: boolean;
  seed?: number;
  /** Where the tensors are made: "cpu", "cuda"; default cuda when present. */
  device?: string;
  python?: string | null;
  onProgress?: (progress: InitModelProgress) => void;
}

export interface InitModelProgress {
  tensor: string;
  bytes: number;
  total: number;
}

/** init_model failed; `exitCode` 2 means bad input (e.g. the folder exists). */
export class InitModelError extends Error {
  override name = "InitModelError";
  constructor(
    message: string,
    readonly exitCode: number | null,
  ) {
    super(message);
  }
}

const progressLine = z.union([
  z.object({ tensor: z.string(), bytes: z.number(), total: z.number() }),
  z.object({ done: z.string(), seconds: z.number() }),
]);

/** Writes the folder; resolves with the seconds it took. */
export async function initModel(options: InitModelOptions): Promise<{ seconds: number }> {
  const args = ["-m", "rl2048_engine.init_model", "--preset", options.preset, "--out", options.out];
  if (options.mxfp4) args.push("--mxfp4");
  if (options.seed !== undefined) args.push("--seed", String(options.seed));
  if (options.device) args.push("--device", options.device);
  args.push("--progress-jsonl");

  const python = enginePython(options.python);
  const child = spawn(python, args, { env: engineEnv(), stdio: ["ignore", "pipe", "pipe"] });
  const stderr: string[] = [];
  createInterface({ input: child.stderr }).on("line", (line) => stderr.push(line));
  let seconds = 0;
  createInterface({ input: child.stdout }).on("line", (line) => {
    const parsed = progressLine.safeParse(safeJson(line));
    if (!parsed.success) return;
    if ("tensor" in parsed.data) options.onProgress?.(parsed.data);
    else seconds = parsed.data.seconds;
  });

  const exitCode = await new Promise<number | null>((resolve, reject) => {
    child.on("error", (err) =>
      reject(new InitModelError(`cannot run ${python}: ${err.message}`, null)),
    );
    child.on("close", (code) => resolve(code));
  });
  if (exitCode !== 0) {
    const lastLine = stderr.filter((l) => l.trim()).at(-1) ?? "no output";
    const detail =
      exitCode === 2 ? lastLine.replace(/^init_model: /, "") : stderr.slice(-15).join("\n");
    throw new InitModelError(
      exitCode === 2 ? detail : `init_model failed (exit ${exitCode}):\n${detail}`,
      exitCode,
    );
  }
  return { seconds };
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}
