/**
 * What the terminal shows during a run: a progress bar with the step, ETA and main metrics
 * (plain lines when stdout is not a terminal), and every N steps one sampled completion with
 * its outcome and final board, as the seed prints them.
 */
import cliProgress from "cli-progress";
import { renderBoard } from "../game/render.ts";

const fmt = (value: number | undefined, digits = 3) =>
  value === undefined || !Number.isFinite(value) ? "-" : value.toFixed(digits);

export interface SampleView {
  /** The header; default "step N: a sampled completion". */
  title?: string;
  step: number;
  code: string | null;
  /** Why extraction failed, when it did. */
  reason?: string;
  outcome: string | null;
  reward: number;
  board?: number[][];
  target: number;
}

export class TrainConsole {
  private readonly tty = Boolean(process.stdout.isTTY);
  private multibar: cliProgress.MultiBar | null = null;
  private bar: cliProgress.SingleBar | null = null;
  private startedAt = Date.now();
  private startStep = 0;

  constructor(private readonly total: number) {}

  start(step: number): void {
    this.startStep = step;
    this.startedAt = Date.now();
    if (!this.tty) return;
    this.multibar = new cliProgress.MultiBar(
      {
        format:
          "step {value}/{total} |{bar}| {percentage}% | ETA {eta_formatted} | reward {reward} | kl {kl} | {outcomes}",
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 20,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar = this.multibar.create(this.total, step, { reward: "-", kl: "-", outcomes: "" });
  }

  step(step: number, metrics: Record<string, number>): void {
    const outcomes = Object.entries(metrics)
      .filter(([key]) => key.startsWith("outcomes/"))
      .map(([key, count]) => `${key.slice("outcomes/".length)} ${count}`)
      .join(" ");
    const payload = { reward: fmt(metrics.reward), kl: fmt(metrics.kl, 4), outcomes };
    if (this.bar) {
      this.bar.update(step, payload);
      return;
    }
    const done = step - this.startStep;
    const perStep = done > 0 ? (Date.now() - this.startedAt) / 1000 / done : 0;
    const eta = Math.round(perStep * (this.total - step));
    console.log(
      `step ${step}/${this.total} | ETA ${eta}s | reward ${payload.reward} | reward_std ${fmt(metrics.reward_std)} | kl ${payload.kl} | ${outcomes}`,
    );
  }

  /** Prints a line above the bar (or plainly without one). */
  log(text: string): void {
    if (this.multibar) this.multibar.log(text.endsWith("\n") ? text : text + "\n");
    else console.log(text);
  }

  sample(view: SampleView): void {
    const title = view.title ?? `step ${view.step}: a sampled completion`;
    const head = `── ${title}, outcome ${view.outcome ?? "none"}, reward ${fmt(view.reward, 2)} ──`;
    const body = view.code ?? `(no strategy: ${view.reason ?? "extraction failed"})`;
    const board = view.board
      ? "\n" + renderBoard(view.board, view.target, { colors: this.tty })
      : "";
    this.log(`${head}\n${body}${board}`);
  }

  stop(): void {
    this.multibar?.update(); // flushes lines logged since the last redraw
    this.multibar?.stop();
    this.multibar = null;
    this.bar = null;
  }
}
