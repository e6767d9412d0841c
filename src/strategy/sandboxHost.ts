/**
 * The sandbox process's main thread (runs bundled, in a node process with an empty
 * environment under Node's permission model): a pool of Pyodide worker threads, a queue of
 * games, and the watchdog.
 *
 * Every game gets the time limit plus a little slack; then the worker is interrupted
 * (KeyboardInterrupt inside Python), and if it has not answered within the grace period it
 * is terminated, its game reported as a timeout from the progress it last wrote, and a fresh
 * worker started. A worker whose Pyodide failed, died, or grew past half its memory cap is
 * replaced the same way. Requests arrive from the parent over IPC and are answered there.
 */
import { Worker } from "node:worker_threads";
import { Game } from "../game/index.ts";
import { gameResult } from "./playGame.ts";
import {
  FLAG_DEADLINE,
  FLAG_INTERRUPT,
  FLAGS_BYTES,
  PROGRESS,
  type WorkerJob,
  type WorkerReply,
  type WorkerSetup,
  type HostConfig,
  type HostMessage,
  type HostRequest,
} from "./sandboxProtocol.ts";
import type { GameResult, GameSpec, StrategyReport } from "./types.ts";

interface Job extends WorkerJob {
  request: Pending;
  index: number;
}

interface Pending {
  id: number;
  replies: (WorkerReply | undefined)[];
  left: number;
  checkOnly: boolean;
}

interface Slot {
  worker: Worker;
  flags: Int32Array;
  ready: boolean;
  job: Job | null;
  startedMs: number;
  timers: NodeJS.Timeout[];
}

const config = JSON.parse(process.argv[2]!) as HostConfig;
const { limits } = config;
const slots = new Set<Slot>();
const queue: Job[] = [];
let startFailures = 0;
let announced = false;

function send(message: HostMessage): void {
  process.send?.(message);
}

function clearTimers(slot: Slot): void {
  for (const t of slot.timers) clearTimeout(t);
  slot.timers = [];
}

function startWorker(): void {
  const sab = new SharedArrayBuffer(FLAGS_BYTES);
  const setup: WorkerSetup = {
    pyodideUrl: config.pyodideUrl,
    indexURL: config.indexURL,
    limits,
    flags: sab,
  };
  const worker = new Worker(new URL("./sandboxWorker.mjs", import.meta.url), {
    workerData: setup,
    stdout: true,
    stderr: true,
    env: {},
  });
  worker.stdout.resume();
  worker.stderr.resume();
  const slot: Slot = {
    worker,
    flags: new Int32Array(sab),
    ready: false,
    job: null,
    startedMs: 0,
    timers: [],
  };
  slots.add(slot);
  worker.on("message", (msg: WorkerReply | "ready") => {
    if (msg === "ready") {
      slot.ready = true;
      startFailures = 0;
      if (!announced && [...slots].every((s) => s.ready)) {
        announced = true;
        send({ type: "ready" });
      }
    } else {
      finishJob(slot, msg);
    }
    dispatch();
  });
  worker.on("error", (err) => died(slot, `sandbox worker failed: ${err.message.split("\n")[0]}`));
  worker.on("exit", (code) => died(slot, `sandbox worker exited (code ${code})`));
}

/** A worker is gone: its game (if any) ends from its last progress, and a new one starts. */
function died(slot: Slot, message: string): void {
  if (!slots.has(slot)) return;
  slots.delete(slot);
  clearTimers(slot);
  if (!slot.ready) startFailures++;
  if (slot.job) {
    const outcome = Atomics.load(slot.flags, FLAG_DEADLINE) === 1 ? "timeout" : "crash";
    const reason = outcome === "timeout" ? `over ${limits.gameSeconds} s; worker stopped` : message;
    finishJob(slot, progressReply(slot, outcome, reason));
  }
  if (startFailures >= 3) {
    for (const job of queue.splice(0)) {
      completeJob(job, crashReply(job.spec, "the sandbox could not start a worker"));
    }
    send({ type: "failed", message });
  } else {
    startWorker();
  }
  dispatch();
}

function crashReply(spec: GameSpec, message: string): WorkerReply {
  const result = gameResult(new Game(spec), "crash", performance.now(), 0, message);
  return { findings: [], loaded: false, loadError: message, result, fatal: false, heapBytes: 0 };
}

/** What a stopped worker last wrote about its game. */
function progressReply(slot: Slot, outcome: "timeout" | "crash", message: string): WorkerReply {
  const job = slot.job!;
  const f = slot.flags;
  const size = job.spec.size;
  const board: number[][] = [];
  for (let r = 0; r < size; r++) {
    board.push(Array.from(f.subarray(PROGRESS + 3 + r * size, PROGRESS + 3 + (r + 1) * size)));
  }
  const started = f[PROGRESS] !== 0 || f[PROGRESS + 2] !== 0;
  const fallback = new Game(job.spec);
  const result: GameResult = {
    outcome,
    steps: f[PROGRESS]!,
    score: f[PROGRESS + 1]!,
    maxTile: started ? f[PROGRESS + 2]! : fallback.maxTile,
    target: job.spec.target,
    board: started ? board : fallback.board,
    seconds: (performance.now() - slot.startedMs) / 1000,
    message,
  };
  return { findings: [], loaded: started, result, fatal: true, heapBytes: 0 };
}

function finishJob(slot: Slot, reply: WorkerReply): void {
  const job = slot.job;
  if (!job) return;
  slot.job = null;
  clearTimers(slot);
  completeJob(job, reply);
  const tooBig = reply.heapBytes > (limits.memoryMb * 1024 * 1024) / 2;
  if ((reply.fatal || tooBig) && slots.has(slot)) {
    slots.delete(slot);
    void slot.worker.terminate();
    startWorker();
  }
}

function completeJob(job: Job, reply: WorkerReply): void {
  const request = job.request;
  request.replies[job.index] = reply;
  if (--request.left > 0) return;
  const replies = request.replies as WorkerReply[];
  const first = replies[0]!;
  const report: StrategyReport = {
    findings: first.findings,
    loaded: replies.every((r) => r.loaded),
    games: request.checkOnly ? [] : replies.map((r) => r.result),
  };
  const loadError = replies.find((r) => r.loadError !== undefined)?.loadError;
  if (loadError !== undefined) report.loadError = loadError;
  send({ type: "report", id: request.id, report });
}

function dispatch(): void {
  for (const slot of slots) {
    if (queue.length === 0) return;
    if (!slot.ready || slot.job) continue;
    const job = queue.shift()!;
    slot.job = job;
    slot.startedMs = performance.now();
    slot.flags.fill(0);
    const { code, spec, checks } = job;
    slot.worker.postMessage({ code, spec, checks } satisfies WorkerJob);
    const interrupt = () => {
      Atomics.store(slot.flags, FLAG_DEADLINE, 1);
      Atomics.store(slot.flags, FLAG_INTERRUPT, 2);
      slot.timers.push(
        setTimeout(() => {
          if (slot.job !== job) return;
          died(slot, "stopped");
          void slot.worker.terminate();
        }, limits.graceSeconds * 1000),
      );
    };
    slot.timers.push(setTimeout(interrupt, limits.gameSeconds * 1000 + 50));
  }
}

process.on("message", (request: HostRequest) => {
  if (request.type !== "score") return;
  const checkOnly = request.games.length === 0;
  const games = checkOnly
    ? [{ size: 4, target: 2048, p4: 0.1, seed: 0, keys: "bepo" }]
    : request.games;
  const pending: Pending = {
    id: request.id,
    replies: games.map(() => undefined),
    left: games.length,
    checkOnly,
  };
  games.forEach((spec, index) => {
    queue.push({
      code: request.code,
      spec: spec as GameSpec,
      checks: request.checks,
      request: pending,
      index,
    });
  });
  dispatch();
});
process.on("disconnect", () => process.exit(0));
process.on("uncaughtException", (err) => {
  process.stderr.write(`sandbox: ${err.stack ?? err}\n`);
});

for (let i = 0; i < config.workers; i++) startWorker();
