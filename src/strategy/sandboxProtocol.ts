/**
 * The messages between the parent (SandboxPool), the sandbox process (sandboxHost) and its
 * worker threads (sandboxWorker), and the layout of each worker's shared flags buffer.
 */
import type { Finding, GameResult, GameSpec, Limits, StrategyReport } from "./types.ts";

/** Given to the sandbox process as its one argument (it has no environment). */
export interface HostConfig {
  workers: number;
  limits: Limits;
  pyodideUrl: string;
  indexURL: string;
}

export type HostRequest = {
  type: "score";
  id: number;
  code: string;
  games: GameSpec[];
  checks: boolean;
};

export type HostMessage =
  | { type: "ready" }
  | { type: "report"; id: number; report: StrategyReport }
  | { type: "failed"; message: string };

export interface WorkerSetup {
  pyodideUrl: string;
  indexURL: string;
  limits: Limits;
  flags: SharedArrayBuffer;
}

export interface WorkerJob {
  code: string;
  spec: GameSpec;
  checks: boolean;
}

export interface WorkerReply {
  findings: Finding[];
  loaded: boolean;
  loadError?: string;
  result: GameResult;
  /** Pyodide can no longer be used; the host replaces this worker. */
  fatal: boolean;
  /** The worker's WebAssembly memory after the game. */
  heapBytes: number;
}

// Int32 slots of the shared flags buffer.
/** Pyodide's interrupt buffer: the host writes 2 (SIGINT) to raise KeyboardInterrupt. */
export const FLAG_INTERRUPT = 0;
/** Set by the host when the game's time is up, so an interrupt reads as a timeout. */
export const FLAG_DEADLINE = 1;
/** The worker's progress: steps, score, max tile, then the board's tiles (row-major). */
export const PROGRESS = 2;
export const FLAGS_BYTES = 4 * (PROGRESS + 3 + 16 * 16);
