/**
 * SandboxPool: scores strategies in a separate sandbox process.
 *
 *   const pool = await SandboxPool.start({ workers, limits });
 *   const report = await pool.score(code, games); // StrategyReport
 *   await pool.close();
 *
 * The sandbox process is bare node started with an empty environment, under Node's
 * permission model (it may read only its own bundle and Pyodide, write no file, start no
 * process), with code generation from strings disabled, and, where the kernel allows it,
 * in its own user and network namespaces (no network at all). Inside it, a pool of worker
 * threads runs Pyodide (see sandboxHost and sandboxWorker). Games of every pending request
 * share the workers, so many completions score in parallel across all cores.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { availableParallelism } from "node:os";
import { dirname } from "node:path";
import { pathToFileURL } from "node:url";
import { createRequire } from "node:module";
import { bundleSandbox } from "./bundle.ts";
import type { HostConfig, HostMessage, HostRequest } from "./sandboxProtocol.ts";
import { limitsSchema, type GameSpec, type Limits, type StrategyReport } from "./types.ts";

export interface SandboxPoolOptions {
  /** Worker threads (default: one per core). */
  workers?: number;
  limits?: Partial<Limits>;
  /** Run the static checks (default true); false tests the runtime wall on its own. */
  checks?: boolean;
}

interface Waiting {
  resolve: (report: StrategyReport) => void;
  reject: (err: Error) => void;
}

let namespacesWork: boolean | undefined;

/** Whether `unshare -rn` can give the sandbox its own (empty) network namespace here. */
function canUnshare(): boolean {
  if (namespacesWork === undefined) {
    const r = spawnSync("unshare", ["-rn", "true"], { stdio: "ignore", timeout: 5000 });
    namespacesWork = r.status === 0;
  }
  return namespacesWork;
}

function permissionFlag(): string {
  return process.allowedNodeEnvironmentFlags.has("--permission")
    ? "--permission"
    : "--experimental-permission";
}

export class SandboxPool {
  readonly limits: Limits;
  readonly workers: number;
  private readonly checks: boolean;
  private child: ChildProcess | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  private stderrTail = "";
  private closed = false;

  private constructor(options: SandboxPoolOptions) {
    this.limits = limitsSchema.parse(options.limits ?? {});
    this.workers = Math.max(1, options.workers ?? availableParallelism());
    this.checks = options.checks ?? true;
  }

  static async start(options: SandboxPoolOptions = {}): Promise<SandboxPool> {
    const pool = new SandboxPool(options);
    await pool.launch();
    return pool;
  }

  /** Checks, loads and plays `code` on each game; null code (nothing extracted) plays nothing. */
  async score(code: string | null, games: GameSpec[]): Promise<StrategyReport> {
    if (this.closed) throw new Error("the sandbox pool is closed");
    if (code === null) return { findings: [], loaded: false, games: [] };
    if (!this.child) await this.launch();
    const id = this.nextId++;
    const request: HostRequest = { type: "score", id, code, games, checks: this.checks };
    return new Promise<StrategyReport>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child!.send(request);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.disconnect();
    const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
    await exited;
    clearTimeout(timer);
  }

  private async launch(): Promise<void> {
    const bundle = await bundleSandbox();
    const require = createRequire(import.meta.url);
    const pyodideEntry = require.resolve("pyodide/pyodide.mjs");
    const pyodideDir = dirname(pyodideEntry);
    const config: HostConfig = {
      workers: this.workers,
      limits: this.limits,
      pyodideUrl: pathToFileURL(pyodideEntry).href,
      indexURL: pyodideDir + "/",
    };
    const nodeArgs = [
      permissionFlag(),
      `--allow-fs-read=${bundle.dir}/`,
      `--allow-fs-read=${pyodideDir}/`,
      "--allow-worker",
      "--disallow-code-generation-from-strings",
      "--no-warnings",
      bundle.host,
      JSON.stringify(config),
    ];
    const [command, args] = canUnshare()
      ? ["unshare", ["-rn", process.execPath, ...nodeArgs]]
      : [process.execPath, nodeArgs];
    const child = spawn(command, args, {
      env: {},
      cwd: bundle.dir,
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      serialization: "advanced",
      // Its own process group, so a terminal Ctrl-C does not kill it under a running
      // training step; it still exits when our IPC channel closes.
      detached: true,
    });
    this.child = child;
    this.stderrTail = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-2000);
    });
    await new Promise<void>((resolve, reject) => {
      child.on("message", (msg: HostMessage) => {
        if (msg.type === "ready") resolve();
        else if (msg.type === "report") {
          const w = this.waiting.get(msg.id);
          this.waiting.delete(msg.id);
          w?.resolve(msg.report);
        } else if (msg.type === "failed") {
          reject(new Error(`sandbox failed: ${msg.message}`));
        }
      });
      child.on("exit", (code, signal) => {
        if (this.child === child) this.child = null;
        const why = `the sandbox process exited (${signal ?? code}): ${this.stderrTail.trim()}`;
        const err = new Error(why);
        for (const w of this.waiting.values()) w.reject(err);
        this.waiting.clear();
        reject(err);
      });
      child.on("error", reject);
    });
  }
}
