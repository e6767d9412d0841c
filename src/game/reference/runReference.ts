/** Runs the plain-Python reference (game_reference.py) with python3: one JSON request, one answer. */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const REFERENCE_SCRIPT = fileURLToPath(new URL("./game_reference.py", import.meta.url));

/** JSON with bigints written as plain integers (Python reads them exactly). */
export function toJson(value: unknown): string {
  const marked = JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? `@big:${v}` : v));
  return marked.replace(/"@big:(-?\d+)"/g, "$1");
}

export function runReference<T>(request: object, python = process.env.PYTHON ?? "python3"): T {
  const result = spawnSync(python, [REFERENCE_SCRIPT], {
    input: toJson(request),
    encoding: "utf8",
    maxBuffer: 1 << 30,
  });
  if (result.error) throw result.error;
  if (result.status !== 0) {
    throw new Error(`${python} ${REFERENCE_SCRIPT} exited ${result.status}: ${result.stderr}`);
  }
  return JSON.parse(result.stdout) as T;
}
