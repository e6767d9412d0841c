/**
 * Starts the engine (`python -m rl2048_engine`) and talks to it over JSON lines
 * (engine/README.md). One request at a time (calls queue), each with a timeout; the engine's
 * errors and the client's own failures (could not start, died, timed out, bad reply) all reject
 * with an `EngineError` whose `kind` says which. A dead engine stays dead until `restart()`.
 *
 *   const engine = await EngineClient.start();
 *   await engine.load({ model: "outputs/tiny" });
 *   const { completions } = await engine.generate({ prompts: [ids], max_new_tokens: 64 });
 *   await engine.shutdown();
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { z } from "zod";
import {
  PROTOCOL_VERSION,
  generateResult,
  infoResult,
  loadResult,
  loadStateResult,
  logprobsResult,
  replySchema,
  saveResult,
  sftStepResult,
  trainStepResult,
  type EngineErrorKind,
  type GenerateParams,
  type GenerateResult,
  type InfoResult,
  type LoadParams,
  type LoadResult,
  type LoadStateResult,
  type LogprobsParams,
  type LogprobsResult,
  type SaveParams,
  type SaveResult,
  type SftStepParams,
  type SftStepResult,
  type TrainStepParams,
  type TrainStepResult,
} from "./engineProtocol.ts";
import { enginePython, engineEnv } from "./python.ts";

export class EngineError extends Error {
  override name = "EngineError";
  constructor(
    readonly kind: EngineErrorKind,
    message: string,
    /** The RPC method that failed, when there was one. */
    readonly method: string | null = null,
  ) {
    super(message);
  }
}

export interface EngineClientOptions {
  /** Python to run; default RL2048_PYTHON, else .venv/bin/python. */
  python?: string | null;
  /** Arguments after the Python; default `-m rl2048_engine`. */
  args?: string[];
  /** Longest a request may take before the engine is stopped (ms); default 30 minutes. */
  timeoutMs?: number;
  /** Longest the start (Python imports, then `info`) may take (ms); default 5 minutes. */
  startTimeoutMs?: number;
  /** Called with each line the engine writes to stderr (its logs and progress). */
  onStderr?: (line: string) => void;
  /** How many stderr lines to keep for the message of a dead engine; default 20. */
  stderrLines?: number;
}

export interface CallOptions {
  timeoutMs?: number;
}

interface Pending {
  id: number;
  method: string;
  resolve: (result: Record<string, unknown>) => void;
  reject: (error: EngineError) => void;
  timer: NodeJS.Timeout;
}

const DEFAULT_TIMEOUT_MS = 30 * 60_000;
const DEFAULT_START_TIMEOUT_MS = 5 * 60_000;
const SHUTDOWN_GRACE_MS = 15_000;

export class EngineClient {
  private child: ChildProcess | null = null;
  private pending: Pending | null = null;
  private dead: EngineError | null = null;
  private closing = false;
  private exited: Promise<void> = Promise.resolve();
  private queue: Promise<unknown> = Promise.resolve();
  private nextId = 1;
  private stderrTail: string[] = [];
  private engineInfo: InfoResult | null = null;

  private constructor(private readonly options: EngineClientOptions) {}

  /** Starts the engine and checks its protocol version. */
  static async start(options: EngineClientOptions = {}): Promise<EngineClient> {
    const client = new EngineClient(options);
    await client.launch();
    return client;
  }

  /** What the engine reported at start (versions, device, memory). */
  get startInfo(): InfoResult {
    if (!this.engineInfo) throw new EngineError("engine_died", "the engine has not started");
    return this.engineInfo;
  }

  /** False once the engine has exited, died or been shut down. */
  get alive(): boolean {
    return this.child !== null && this.dead === null;
  }

  /** The last lines the engine wrote to stderr. */
  get lastStderr(): readonly string[] {
    return this.stderrTail;
  }

  /** Stops the engine (if it runs) and starts a fresh one; the model must be loaded again. */
  async restart(): Promise<InfoResult> {
    await this.shutdown();
    await this.launch();
    return this.startInfo;
  }

  info(options?: CallOptions): Promise<InfoResult> {
    return this.call("info", {}, infoResult, options);
  }

  load(params: LoadParams, options?: CallOptions): Promise<LoadResult> {
    return this.call("load", params, loadResult, options);
  }

  generate(params: GenerateParams, options?: CallOptions): Promise<GenerateResult> {
    return this.call("generate", params, generateResult, options);
  }

  logprobs(params: LogprobsParams, options?: CallOptions): Promise<LogprobsResult> {
    return this.call("logprobs", params, logprobsResult, options);
  }

  trainStep(params: TrainStepParams, options?: CallOptions): Promise<TrainStepResult> {
    return this.call("train_step", params, trainStepResult, options);
  }

  sftStep(params: SftStepParams, options?: CallOptions): Promise<SftStepResult> {
    return this.call("sft_step", params, sftStepResult, options);
  }

  save(params: SaveParams, options?: CallOptions): Promise<SaveResult> {
    return this.call("save", params, saveResult, options);
  }

  loadState(params: { path: string }, options?: CallOptions): Promise<LoadStateResult> {
    return this.call("load_state", params, loadStateResult, options);
  }

  /** Asks the engine to exit and waits for it; kills it if it does not go within 15 s. */
  async shutdown(): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (this.dead === null) {
      this.closing = true;
      try {
        await this.send("shutdown", {}, SHUTDOWN_GRACE_MS);
      } catch {
        // Dead or stuck: it is killed below.
      }
    }
    this.closing = true;
    const gone = await Promise.race([
      this.exited.then(() => true),
      sleep(SHUTDOWN_GRACE_MS).then(() => false),
    ]);
    if (!gone) {
      child.kill("SIGKILL");
      await this.exited;
    }
    this.child = null;
  }

  private async launch(): Promise<void> {
    const python = enginePython(this.options.python);
    const args = this.options.args ?? ["-m", "rl2048_engine"];
    this.dead = null;
    this.closing = false;
    this.stderrTail = [];
    this.engineInfo = null;
    // Its own process group: a Ctrl-C in the terminal reaches only us, and `rl2048 train` then
    // saves a checkpoint through the engine before stopping it. EOF on stdin still ends it.
    const child = spawn(python, args, {
      env: engineEnv(),
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.on("close", () => resolve());
      child.on("error", () => resolve()); // never started: there will be no close
    });

    child.on("error", (err) => {
      const hint =
        (err as NodeJS.ErrnoException).code === "ENOENT"
          ? " (run make setup, or set RL2048_PYTHON)"
          : "";
      this.fail(
        new EngineError("spawn", `cannot start the engine with ${python}: ${err.message}${hint}`),
      );
    });
    // "close", not "exit": it comes once stderr is read to the end, so a Python that dies at
    // start (an import error, say) still has its traceback in the message.
    child.on("close", (code, signal) => {
      if (this.closing && this.dead === null) {
        this.dead = new EngineError("engine_died", "the engine was shut down");
        return;
      }
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      // First line: how it ended and its last stderr line (usually the exception); then the tail.
      const last = this.stderrTail
        .filter((line) => line.trim())
        .at(-1)
        ?.trim();
      const tail = this.stderrTail.length
        ? `\nits last stderr lines:\n${this.stderrTail.join("\n")}`
        : "";
      this.fail(
        new EngineError("engine_died", `the engine ${how}${last ? `: ${last}` : ""}${tail}`),
      );
    });
    child.stdin?.on("error", () => {
      // A broken pipe means the engine is gone; the exit handler reports it.
    });
    createInterface({ input: child.stderr! }).on("line", (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > (this.options.stderrLines ?? 20)) this.stderrTail.shift();
      this.options.onStderr?.(line);
    });
    createInterface({ input: child.stdout! }).on("line", (line) => this.onReply(line));

    const info = await this.call("info", {}, infoResult, {
      timeoutMs: this.options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
    });
    if (info.protocol !== PROTOCOL_VERSION) {
      await this.shutdown();
      throw new EngineError(
        "protocol",
        `the engine speaks protocol ${info.protocol}, this rl2048 speaks ${PROTOCOL_VERSION}: update the engine (make setup)`,
        "info",
      );
    }
    this.engineInfo = info;
  }

  /** Queues one request; resolves with its result checked against `schema`. */
  private call<S extends z.ZodType>(
    method: string,
    params: object,
    schema: S,
    options: CallOptions = {},
  ): Promise<z.infer<S>> {
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const run = this.queue.then(async () => {
      const result = await this.send(method, params, timeoutMs);
      const parsed = schema.safeParse(result);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const where = issue?.path.join(".") || "result";
        throw new EngineError(
          "protocol",
          `unexpected ${method} reply: ${where}: ${issue?.message}`,
          method,
        );
      }
      return parsed.data as z.infer<S>;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private send(
    method: string,
    params: object,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const child = this.child;
      if (this.dead || !child?.stdin) {
        reject(this.dead ?? new EngineError("engine_died", "the engine is not running", method));
        return;
      }
      const id = this.nextId++;
      const timer = setTimeout(() => {
        const error = new EngineError(
          "timeout",
          `${method} took longer than ${Math.round(timeoutMs / 1000)} s; the engine was stopped`,
          method,
        );
        this.fail(error);
        child.kill("SIGKILL");
      }, timeoutMs);
      this.pending = { id, method, resolve, reject, timer };
      child.stdin.write(JSON.stringify({ id, method, params }) + "\n");
    });
  }

  private onReply(line: string): void {
    if (!line.trim()) return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      return this.protocolFailure(
        `the engine wrote a line that is not JSON: ${line.slice(0, 200)}`,
      );
    }
    const reply = replySchema.safeParse(json);
    const pending = this.pending;
    if (!reply.success)
      return this.protocolFailure(`malformed engine reply: ${line.slice(0, 200)}`);
    if (!pending) return this.protocolFailure(`unexpected engine reply: ${line.slice(0, 200)}`);
    if (reply.data.id !== pending.id && !("error" in reply.data && reply.data.id === null)) {
      return this.protocolFailure(`engine reply for id ${reply.data.id}, expected ${pending.id}`);
    }
    clearTimeout(pending.timer);
    this.pending = null;
    if ("error" in reply.data) {
      pending.reject(
        new EngineError(reply.data.error.kind, reply.data.error.message, pending.method),
      );
    } else {
      pending.resolve(reply.data.result);
    }
  }

  /** The stream can no longer be trusted: fail the request and stop the engine. */
  private protocolFailure(message: string): void {
    this.fail(new EngineError("protocol", message, this.pending?.method ?? null));
    this.child?.kill("SIGKILL");
  }

  /** Marks the engine dead with `error` and rejects the request in flight. */
  private fail(error: EngineError): void {
    if (this.dead === null) this.dead = error;
    const pending = this.pending;
    if (pending) {
      clearTimeout(pending.timer);
      this.pending = null;
      const method = error.method ?? pending.method;
      pending.reject(new EngineError(error.kind, error.message, method));
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
