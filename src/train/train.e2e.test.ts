/**
 * End to end through the real CLI, engine, sandbox and rewards on the CPU: a tiny gpt-oss
 * folder with random weights (init_model), warm-started here for a few SFT steps so that it
 * writes a mix of working and broken strategies, then trained with GRPO. Also: kill -9 and
 * Ctrl-C mid-run, then --resume, give the uninterrupted run's metrics; and the failures a user
 * can meet end in one line and a non-zero exit, with no checkpoint lost or half written.
 */
import { spawn, type ChildProcess } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ChatTemplate } from "../model/chatTemplate.ts";
import { EngineClient } from "../model/engineClient.ts";
import { initModel } from "../model/initModel.ts";
import { enginePython, REPO_ROOT } from "../model/python.ts";
import { ModelTokenizer } from "../model/tokenizer.ts";
import { strategyPrompt } from "./prompt.ts";

const CLI = join(REPO_ROOT, "bin/rl2048.js");
const work = mkdtempSync(join(tmpdir(), "rl2048-train-e2e-"));
const policy = join(work, "policy");
const out = join(work, "outputs");

/** A few answers to the seed's prompt, good and bad, so rewards differ within a group. */
const ANSWERS = [
  'return "w"',
  'return "a"',
  'return "s"',
  'return "x"',
  'for m in "dsaw":\n        return m',
];

/** SFT on ANSWERS, then a merged 16-bit folder: a policy that writes varied strategies. */
async function warmStart(random: string, target: string): Promise<void> {
  const tokenizer = await ModelTokenizer.fromFolder(random);
  const template = await ChatTemplate.fromFolder(random);
  const prompt = tokenizer.encode(
    template.render([{ role: "user", content: strategyPrompt("wasd") }], {
      addGenerationPrompt: true,
      reasoningEffort: "low",
    }),
  );
  const items = ANSWERS.map((body) => ({
    prompt,
    completion: tokenizer.encode(
      `<|channel|>final<|message|>\`\`\`python\ndef strategy(board):\n    ${body}\n\`\`\`<|return|>`,
    ),
  }));
  const engine = await EngineClient.start();
  try {
    await engine.load({
      model: random,
      dtype: "float32",
      device: "cpu",
      seed: 0,
      lora: null,
      full_finetune: true,
      optim: { lr: 3e-3, schedule: "constant" },
    });
    for (let i = 0; i < 40; i++) await engine.sftStep({ items });
    await engine.save({ path: target, format: "merged_16bit" });
  } finally {
    await engine.shutdown();
  }
}

const SETTINGS = [
  "--steps=4",
  "--seed=7",
  "--set=training.per_device_train_batch_size=2",
  "--set=training.gradient_accumulation_steps=1",
  "--set=training.max_sampling_rounds=2",
  "--set=generation.max_completion_length=32",
  "--set=game.seeds_per_completion=2",
  "--set=generation.num_generations=4",
  "--set=output.save_steps=1",
  "--set=output.log_completions_steps=2",
  "--set=sandbox_workers=2",
];

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[]): { child: ChildProcess; done: Promise<Finished> } {
  const child = spawn(process.execPath, [CLI, "train", ...args], {
    cwd: work,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d));
  child.stderr!.on("data", (d: Buffer) => (stderr += d));
  const done = new Promise<Finished>((resolve) =>
    child.on("close", (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

const train = (args: string[]) => start(args).done;

async function waitFor(condition: () => boolean, what: string, ms = 240_000): Promise<void> {
  const until = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const lines = (path: string) =>
  readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, number>);

/** Metrics without the timings, which differ from run to run. */
const comparable = (path: string) =>
  lines(path).map((m) =>
    Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith("time/"))),
  );

beforeAll(async () => {
  const random = join(work, "random");
  await initModel({ preset: "tiny", out: random, device: "cpu" });
  await warmStart(random, policy);
}, 300_000);

describe("rl2048 train, end to end on the CPU", () => {
  it("trains, logs, checkpoints, exports and tests the model", async () => {
    const r = await train([
      `--model=${policy}`,
      `--output-dir=${out}`,
      "--run-name=full",
      ...SETTINGS,
      "--set=output.export_formats=[lora]",
    ]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    const run = join(out, "full");

    const metrics = lines(join(run, "metrics.jsonl"));
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3, 4]);
    for (const key of [
      "reward",
      "reward_std",
      "rewards/function_works/mean",
      "rewards/game_score/std",
      "frac_reward_zero_std",
      "completions/mean_length",
      "completions/clipped_ratio",
      "completions/mean_terminated_length",
      "sampling/rounds",
      "time/generate_s",
      "time/score_s",
      "time/train_s",
    ]) {
      expect(metrics[0]).toHaveProperty([key]);
    }
    // The warm-started policy writes working and broken strategies: rewards differ, the model
    // is updated (the engine's metrics are there) and games were played.
    const trained = metrics.filter((m) => m.grad_norm !== undefined);
    expect(trained.length).toBeGreaterThan(0);
    for (const key of [
      "kl",
      "entropy",
      "clip_ratio/low_mean",
      "clip_ratio/high_mean",
      "learning_rate",
    ]) {
      expect(trained[0]).toHaveProperty([key]);
    }
    expect(metrics.some((m) => (m.reward_std as number) > 0)).toBe(true);
    expect(
      metrics.some((m) =>
        Object.keys(m).some((k) => k.startsWith("outcomes/") && k !== "outcomes/none"),
      ),
    ).toBe(true);

    const strategies = lines(join(run, "strategies.jsonl"));
    expect(strategies.length).toBeGreaterThan(0);
    expect(strategies[0]).toMatchObject({ step: 1 });
    expect(readFileSync(join(run, "best_strategy.py"), "utf8")).toMatch(/^def strategy\(board\):/);
    expect(JSON.parse(readFileSync(join(run, "best_strategy.json"), "utf8"))).toHaveProperty(
      "reward",
    );

    expect(readdirSync(join(run, "tensorboard"))[0]).toMatch(/^events\.out\.tfevents\./);
    // The tiny preset keeps the last 3 checkpoints.
    expect(
      readdirSync(run)
        .filter((n) => n.startsWith("checkpoint-"))
        .sort(),
    ).toEqual(["checkpoint-2", "checkpoint-3", "checkpoint-4"]);
    for (const step of [2, 3, 4]) {
      const ckpt = join(run, `checkpoint-${step}`);
      for (const file of [
        "adapter_model.safetensors",
        "adapter_config.json",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pt",
        "trainer_state.json",
      ]) {
        expect(existsSync(join(ckpt, file)), `${ckpt}/${file}`).toBe(true);
      }
    }
    const state = JSON.parse(readFileSync(join(run, "checkpoint-4", "trainer_state.json"), "utf8"));
    expect(state).toMatchObject({ step: 4, run_name: "full" });
    expect(state.data_position).toBeGreaterThanOrEqual(8);
    expect(existsSync(join(run, "export-lora", "adapter_model.safetensors"))).toBe(true);
    expect(JSON.parse(readFileSync(join(run, "final_test.json"), "utf8"))).toHaveProperty("games");
    expect(r.stdout).toMatch(/a sampled completion/);
    expect(r.stdout).toMatch(/final test: /);

    // rl2048 export writes the same adapter from the checkpoint, and never over a folder.
    const exported = join(work, "exported-lora");
    const exportRun = (out: string) =>
      new Promise<number | null>((resolve) =>
        spawn(
          process.execPath,
          [CLI, "export", join(run, "checkpoint-4"), "--format=lora", `--out=${out}`],
          {
            stdio: "ignore",
          },
        ).on("close", resolve),
      );
    expect(await exportRun(exported)).toBe(0);
    expect(readFileSync(join(exported, "adapter_model.safetensors"))).toEqual(
      readFileSync(join(run, "export-lora", "adapter_model.safetensors")),
    );
    expect(await exportRun(exported)).toBe(2);
  }, 600_000);

  it("kill -9, then Ctrl-C, each followed by --resume, give the uninterrupted run's metrics", async () => {
    const args = [`--model=${policy}`, `--output-dir=${out}`, "--run-name=resumed", ...SETTINGS];
    const run = join(out, "resumed");
    const first = start(args);
    await waitFor(
      () => existsSync(join(run, "checkpoint-1", "trainer_state.json")),
      "checkpoint-1",
    );
    first.child.kill("SIGKILL");
    await first.done;
    expect(existsSync(join(run, "checkpoint-4"))).toBe(false);

    // Resume, then Ctrl-C once step 2 is logged: the step under way ends, a checkpoint is
    // saved (step 2 or 3, whichever was running) and it exits 130.
    const second = start([...args, "--resume"]);
    await waitFor(
      () =>
        existsSync(join(run, "metrics.jsonl")) &&
        lines(join(run, "metrics.jsonl")).some((m) => m.step === 2),
      "step 2",
    );
    second.child.kill("SIGINT");
    const interrupted = await second.done;
    expect(interrupted.code).toBe(130);
    expect(interrupted.stdout).toMatch(/resumed from .*checkpoint-1 \(step 1\)/);
    expect(interrupted.stdout).toMatch(/Ctrl-C: finishing this step/);
    const saved = readdirSync(run).filter((n) => n.startsWith("checkpoint-"));
    expect(saved).toContain("checkpoint-2");
    expect(saved).not.toContain("checkpoint-4");

    const third = await train([`--output-dir=${out}`, "--resume=latest", "--run-name=resumed"]);
    expect(third.code).toBe(0);
    expect(comparable(join(run, "metrics.jsonl"))).toEqual(
      comparable(join(out, "full", "metrics.jsonl")),
    );
    expect(readFileSync(join(run, "checkpoint-4", "adapter_model.safetensors"))).toEqual(
      readFileSync(join(out, "full", "checkpoint-4", "adapter_model.safetensors")),
    );
  }, 600_000);

  it("one step off policy: trains a step behind, keeps the batch sampled ahead, resumes as if never stopped", async () => {
    const settings = [
      `--model=${policy}`,
      `--output-dir=${out}`,
      ...SETTINGS.filter((s) => !s.startsWith("--steps")),
      "--steps=3",
      "--set=training.dynamic_sampling=false",
      "--set=training.one_step_off_policy=true",
      "--set=output.final_test_games=0",
    ];
    const r = await train([...settings, "--run-name=ahead"]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    const run = join(out, "ahead");
    const metrics = lines(join(run, "metrics.jsonl"));
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3]);
    expect(metrics.filter((m) => m.grad_norm !== undefined).length).toBeGreaterThan(0);
    // Checkpoints 1 and 2 hold the next step's batch (2 prompts x 4), with its logprobs.
    for (const step of [1, 2]) {
      const pending = JSON.parse(
        readFileSync(join(run, `checkpoint-${step}`, "pending_batch.json"), "utf8"),
      ) as { ids: number[]; old_logprobs: number[] }[];
      expect(pending).toHaveLength(8);
      for (const c of pending) expect(c.old_logprobs).toHaveLength(c.ids.length);
    }
    expect(existsSync(join(run, "checkpoint-3", "pending_batch.json"))).toBe(false);

    // Ctrl-C once step 1 is logged: the step under way ends and its checkpoint (step 1 or 2)
    // keeps the batch sampled ahead; the resumed run logs what the uninterrupted one did.
    const stopped = join(out, "ahead-stopped");
    const first = start([...settings, "--run-name=ahead-stopped"]);
    await waitFor(
      () =>
        existsSync(join(stopped, "metrics.jsonl")) &&
        lines(join(stopped, "metrics.jsonl")).length > 0,
      "step 1",
    );
    first.child.kill("SIGINT");
    expect((await first.done).code).toBe(130);
    const latest = readdirSync(stopped)
      .filter((n) => n.startsWith("checkpoint-"))
      .sort()
      .at(-1)!;
    expect(["checkpoint-1", "checkpoint-2"]).toContain(latest);
    expect(existsSync(join(stopped, latest, "pending_batch.json"))).toBe(true);
    const resumed = await train([
      `--output-dir=${out}`,
      "--resume=latest",
      "--run-name=ahead-stopped",
    ]);
    expect(resumed.code).toBe(0);
    expect(comparable(join(stopped, "metrics.jsonl"))).toEqual(
      comparable(join(run, "metrics.jsonl")),
    );
  }, 600_000);

  it("bad config, a folder that is not a model, an engine that dies: one line, non-zero exit", async () => {
    const bad = await train(["--set=training.learning_rat=1"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe("rl2048: config: unknown field training.learning_rat");

    const notModel = await train([`--model=${work}`, `--output-dir=${out}`]);
    expect(notModel.code).toBe(2);
    expect(notModel.stderr.trim()).toBe(`rl2048: not a model folder (no config.json): ${work}`);

    // An engine that stops answering after six requests: info, load, generate, train_step,
    // save (checkpoint-1), generate; the next train_step finds it dead.
    const wrapper = join(work, "dying-python.sh");
    writeFileSync(wrapper, `#!/bin/sh\nsed -u 6q | exec ${enginePython()} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const died = await train([
      `--model=${policy}`,
      `--output-dir=${out}`,
      "--run-name=died",
      ...SETTINGS,
      "--set=training.dynamic_sampling=false",
      `--set=engine.python=${wrapper}`,
    ]);
    expect(died.code).toBe(1);
    expect(died.stderr.trim().split("\n")).toHaveLength(1);
    expect(died.stderr).toMatch(/^rl2048 train: the engine stopped: the engine exited/);
    expect(
      readdirSync(join(out, "died"))
        .filter((n) => n.includes("checkpoint"))
        .sort(),
    ).toEqual(["checkpoint-1"]);
    expect(existsSync(join(out, "died", "checkpoint-1", "trainer_state.json"))).toBe(true);
  }, 600_000);
});
