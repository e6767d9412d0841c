/**
 * One sandbox worker thread: a Pyodide interpreter, loaded once and reused, that checks,
 * loads and plays strategies one game at a time (runs bundled, inside the sandbox process).
 *
 * Before Pyodide starts, WebAssembly memory growth is capped (allocations past the cap fail
 * with MemoryError). After it starts, Python's bridges to JavaScript are cut (runner.harden,
 * the `js` and `pyodide_js` modules unregistered, `js` itself an empty object), and the
 * thread's JavaScript loses what could reach the host: `require`, child processes, process
 * signals and bindings, network fetch. The shared `flags` buffer carries Pyodide's interrupt
 * signal (slot 0), the host's "deadline passed" mark (slot 1), and this worker's progress
 * (slots 2.. : steps, score, max tile, then the board) so a terminated game still reports.
 */
import { createRequire } from "node:module";
import { parentPort, workerData } from "node:worker_threads";
import { constants as fsConstants } from "node:fs";
import type { PyodideAPI } from "pyodide";
import type { PyBufferView, PyProxy } from "pyodide/ffi";
import { Game } from "../game/index.ts";
import { gameResult, playGame, type StrategyReply } from "./playGame.ts";
import type { Finding } from "./types.ts";
import {
  FLAG_DEADLINE,
  PROGRESS,
  type WorkerJob,
  type WorkerReply,
  type WorkerSetup,
} from "./sandboxProtocol.ts";
import policySource from "./python/policy.py";
import checksSource from "./python/checks.py";
import runnerSource from "./python/runner.py";

const setup = workerData as WorkerSetup;
const flags = new Int32Array(setup.flags);

interface WasmMemory {
  buffer: ArrayBuffer;
  grow(pages: number): number;
}

/** Every WebAssembly memory of this thread (Pyodide's heap) stops growing at `maxBytes`. */
function capMemoryGrowth(maxBytes: number): void {
  const wasm = (globalThis as unknown as { WebAssembly: { Memory: { prototype: WasmMemory } } })
    .WebAssembly;
  const grow = wasm.Memory.prototype.grow;
  wasm.Memory.prototype.grow = function (this: WasmMemory, pages: number) {
    if (this.buffer.byteLength + pages * 65536 > maxBytes) {
      throw new RangeError("sandbox memory limit");
    }
    return grow.call(this, pages);
  };
}

function denied(): never {
  throw new Error("not available in the sandbox");
}

/** Takes from this thread's JavaScript what could reach the host. */
function stripHostAccess(): void {
  const require = createRequire(import.meta.url);
  const childProcess = require("node:child_process") as Record<string, unknown>;
  for (const name of [
    "spawn",
    "spawnSync",
    "exec",
    "execSync",
    "execFile",
    "execFileSync",
    "fork",
  ]) {
    childProcess[name] =
      name === "spawnSync" ? () => ({ status: 127, signal: null, output: [] }) : denied;
  }
  const g = globalThis as Record<string, unknown>;
  g.require = denied;
  for (const name of ["fetch", "WebSocket", "EventSource", "XMLHttpRequest"]) delete g[name];
  const proc = process as unknown as Record<string, unknown>;
  for (const name of [
    "kill",
    "binding",
    "_linkedBinding",
    "dlopen",
    "chdir",
    "abort",
    "exit",
    "reallyExit",
    "getBuiltinModule",
  ]) {
    proc[name] = denied;
  }
  proc.env = {};
}

const sink = { batched: () => undefined };

async function startPython() {
  capMemoryGrowth(setup.limits.memoryMb * 1024 * 1024);
  // Pyodide's NODEFS reads fs constants through process.binding, which the permission model denies.
  (process as unknown as { binding: (n: string) => unknown }).binding = (name: string) => {
    if (name === "constants") return { fs: fsConstants };
    return denied();
  };
  const { loadPyodide } = (await import(setup.pyodideUrl)) as {
    loadPyodide: (o: object) => Promise<PyodideAPI>;
  };
  const py = await loadPyodide({
    indexURL: setup.indexURL,
    env: {},
    args: [],
    jsglobals: {},
    stdin: () => null,
  });
  py.setStdout(sink);
  py.setStderr(sink);
  py.FS.mkdirTree("/sandbox");
  py.FS.writeFile("/sandbox/policy.py", policySource);
  py.FS.writeFile("/sandbox/checks.py", checksSource);
  py.FS.writeFile("/sandbox/runner.py", runnerSource);
  py.runPython("import sys; sys.path.insert(0, '/sandbox'); import runner");
  const runner = py.pyimport("runner") as PyProxy & Record<string, unknown>;
  type PyFn = ((...a: unknown[]) => unknown) & PyProxy;
  const fns = {
    prepare: runner.prepare as PyFn,
    load: runner.load as PyFn,
    boardCells: runner.board_cells as PyFn,
    step: runner.step as PyFn,
    lastError: () => String(runner.last_error),
  };
  (runner.harden as PyFn)();
  py.unregisterJsModule("js");
  py.unregisterJsModule("pyodide_js");
  py.setInterruptBuffer(new Int32Array(setup.flags, 0, 1));
  stripHostAccess();
  return { py, fns };
}

const { py, fns } = await startPython();
let prepared: { code: string; checks: boolean; findings: Finding[]; error: string | null } | null =
  null;
let cells: { size: number; view: PyBufferView } | null = null;

function cellsFor(size: number): Int32Array {
  if (!cells || cells.size !== size || cells.view.data.length === 0) {
    cells?.view.release();
    const array = fns.boardCells(size) as PyProxy & { getBuffer(t: string): PyBufferView };
    cells = { size, view: array.getBuffer("i32") };
    array.destroy();
  }
  return cells.view.data as Int32Array;
}

function writeProgress(game: Game, steps: number): void {
  flags[PROGRESS] = steps;
  flags[PROGRESS + 1] = game.score;
  flags[PROGRESS + 2] = game.maxTile;
}

function asker(startSteps: { n: number }) {
  return (game: Game): StrategyReply => {
    const exps = game.exponents;
    const data = cellsFor(game.size);
    for (let i = 0; i < exps.length; i++) {
      const tile = exps[i] === 0 ? 0 : 2 ** exps[i]!;
      data[i] = tile;
      flags[PROGRESS + 3 + i] = tile;
    }
    writeProgress(game, startSteps.n++);
    const reply = fns.step();
    if (typeof reply === "string") return { kind: "key", key: reply };
    if (reply === 0) return { kind: "invalid", message: fns.lastError() };
    if (reply === 2 && flags[FLAG_DEADLINE] === 1) return { kind: "timeout" };
    if (reply === 2) return { kind: "crash", message: "KeyboardInterrupt" };
    return { kind: "crash", message: fns.lastError() };
  };
}

function play(job: WorkerJob): WorkerReply {
  const start = performance.now();
  const reply = (r: Omit<WorkerReply, "fatal" | "heapBytes">): WorkerReply => ({
    ...r,
    fatal: false,
    heapBytes: 0,
  });
  if (!prepared || prepared.code !== job.code || prepared.checks !== job.checks) {
    const p = JSON.parse(String(fns.prepare(job.code, job.checks))) as {
      findings: Finding[];
      error: string | null;
    };
    prepared = { code: job.code, checks: job.checks, ...p };
  }
  const fresh = new Game(job.spec);
  if (prepared.findings.length > 0) {
    const first = prepared.findings[0]!;
    return reply({
      findings: prepared.findings,
      loaded: false,
      result: gameResult(fresh, "rejected", start, 0, `${first.category}: ${first.message}`),
    });
  }
  const base = { findings: [] as Finding[] };
  if (prepared.error !== null) {
    const result = gameResult(fresh, "crash", start, 0, prepared.error);
    return reply({ ...base, loaded: false, loadError: prepared.error, result });
  }
  const status = fns.load(String(job.spec.seed), setup.limits.outputChars);
  if (status !== 0) {
    const timedOut = status === 2 && flags[FLAG_DEADLINE] === 1;
    const loadError = timedOut ? "interrupted while loading" : fns.lastError();
    const result = gameResult(fresh, timedOut ? "timeout" : "crash", start, 0, loadError);
    return reply({ ...base, loaded: false, loadError, result });
  }
  const result = playGame(job.spec, setup.limits, asker({ n: 0 }), start);
  return reply({ ...base, loaded: true, result });
}

parentPort!.on("message", (job: WorkerJob) => {
  let out: WorkerReply;
  try {
    out = play(job);
  } catch (err) {
    // A JavaScript-level failure inside Pyodide (a fatal error): report it, then be replaced.
    const message = `sandbox error: ${String((err as Error)?.message ?? err).split("\n")[0]}`;
    const fresh = new Game(job.spec);
    out = {
      findings: prepared?.findings ?? [],
      loaded: false,
      loadError: message,
      result: gameResult(fresh, "crash", performance.now(), 0, message),
      fatal: true,
      heapBytes: 0,
    };
  }
  out.heapBytes = (py as unknown as { _module: { HEAP8: Int8Array } })._module.HEAP8.length;
  parentPort!.postMessage(out);
});
parentPort!.postMessage("ready");
