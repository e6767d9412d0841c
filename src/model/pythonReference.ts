/**
 * Test support: runs a Python snippet in the engine's Python with JSON in and JSON out, to
 * compare our TypeScript results with what the Python libraries (tokenizers, transformers) give.
 */
import { execFileSync } from "node:child_process";
import { enginePython, engineEnv } from "./python.ts";

/** Runs `script`, which reads `json.load(sys.stdin)` and prints one JSON value. */
export function pythonJson<T>(script: string, input: unknown): T {
  const out = execFileSync(enginePython(), ["-c", script], {
    input: JSON.stringify(input),
    env: engineEnv(),
    maxBuffer: 256 * 1024 * 1024,
    encoding: "utf8",
  });
  return JSON.parse(out) as T;
}
