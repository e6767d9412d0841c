/**
 * The Python that runs the engine: `RL2048_PYTHON` when set, else the project's `.venv`.
 * `engineEnv` puts this checkout's `engine/` first on PYTHONPATH, so the engine that runs is
 * the one next to this code even with a Python whose site-packages holds another copy.
 */
import { delimiter } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (two levels above src/model/). */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

export const ENGINE_DIR = fileURLToPath(new URL("../../engine/", import.meta.url));

/** The Python to run: the argument, else `RL2048_PYTHON`, else `.venv/bin/python`. */
export function enginePython(python?: string | null): string {
  return (
    python ||
    process.env.RL2048_PYTHON ||
    fileURLToPath(new URL("../../.venv/bin/python", import.meta.url))
  );
}

/** The environment for a Python child: ours, plus the engine on PYTHONPATH. */
export function engineEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const path = [ENGINE_DIR, process.env.PYTHONPATH].filter(Boolean).join(delimiter);
  return { ...process.env, PYTHONPATH: path, PYTHONUNBUFFERED: "1", ...extra };
}
