/**
 * What a run leaves to read: metrics.jsonl (one line per step, TRL's names), strategies.jsonl
 * (every extracted strategy with its step, rewards and outcome), best_strategy.py/.json (the
 * best so far, kept apart) and TensorBoard event files under tensorboard/.
 * On resume, lines after the checkpoint's step are dropped: those steps run again.
 */
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { BestStrategy } from "./checkpoints.ts";
import { TensorBoardWriter } from "./tensorboard.ts";

export interface StrategyRecord {
  step: number;
  code: string;
  /** Weighted total of the reward functions. */
  reward: number;
  rewards: Record<string, number>;
  outcome: string | null;
  /** Per game (one per seed): outcome, score, best tile. */
  games: { seed: number; outcome: string; score: number; max_tile: number }[];
}

/** Writes a file through a temporary name, so readers never see half of it. */
export function writeFileAtomic(path: string, text: string): void {
  const temp = `${path}.tmp-${process.pid}`;
  writeFileSync(temp, text);
  renameSync(temp, path);
}

/** Keeps the JSON lines of `path` whose `step` is at most `step`. */
function truncateJsonl(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .filter((line) => {
      try {
        return (JSON.parse(line) as { step: number }).step <= step;
      } catch {
        return false; // a line cut by a crash
      }
    });
  writeFileAtomic(path, kept.map((line) => line + "\n").join(""));
}

export class RunLog {
  readonly metricsPath: string;
  readonly strategiesPath: string;
  private tensorboard: TensorBoardWriter | null;

  constructor(
    readonly runDir: string,
    options: { tensorboard: boolean; resumeStep?: number; best?: BestStrategy | null },
  ) {
    mkdirSync(runDir, { recursive: true });
    this.metricsPath = join(runDir, "metrics.jsonl");
    this.strategiesPath = join(runDir, "strategies.jsonl");
    this.best = options.best ?? null;
    if (options.resumeStep !== undefined) {
      truncateJsonl(this.metricsPath, options.resumeStep);
      truncateJsonl(this.strategiesPath, options.resumeStep);
      this.writeBest();
    }
    this.tensorboard = options.tensorboard
      ? new TensorBoardWriter(join(runDir, "tensorboard"), options.resumeStep)
      : null;
  }

  best: BestStrategy | null;

  metrics(step: number, metrics: Record<string, number>): void {
    appendFileSync(this.metricsPath, JSON.stringify({ step, ...metrics }) + "\n");
    this.tensorboard?.scalars(step, metrics);
  }

  /** Records one strategy; returns true when it is the best so far. */
  strategy(record: StrategyRecord): boolean {
    appendFileSync(this.strategiesPath, JSON.stringify(record) + "\n");
    if (this.best !== null && record.reward <= this.best.reward) return false;
    this.best = {
      step: record.step,
      reward: record.reward,
      code: record.code,
      outcome: record.outcome,
      rewards: record.rewards,
    };
    this.writeBest();
    return true;
  }

  private writeBest(): void {
    if (!this.best) return;
    const { code, ...about } = this.best;
    writeFileAtomic(
      join(this.runDir, "best_strategy.py"),
      code.endsWith("\n") ? code : code + "\n",
    );
    writeFileAtomic(join(this.runDir, "best_strategy.json"), JSON.stringify(about, null, 2) + "\n");
  }

  close(): void {
    this.tensorboard?.close();
    this.tensorboard = null;
  }
}
