import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig, parseSetFlag, resolveConfig } from "./config.ts";
import { loadParams } from "./session.ts";

const dir = mkdtempSync(join(tmpdir(), "rl2048-config-"));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe("presets", () => {
  it("seed runs the engine's fast paths, the update from CUDA graphs, unless turned off", () => {
    const c = resolveConfig({ preset: "seed" });
    expect(c.model).toMatchObject({ fast: true, cuda_graphs: true });
    expect(loadParams(c, "/m")).toMatchObject({ fast: true, cuda_graphs: true });
    const off = resolveConfig({ preset: "seed", sets: ["model.cuda_graphs=false"] });
    expect(loadParams(off, "/m")).toMatchObject({ fast: true, cuda_graphs: false });
  });

  it("seed is the seed's run", () => {
    const c = resolveConfig({ preset: "seed" });
    expect(c.model).toMatchObject({
      path: null,
      load_in_4bit: true,
      max_seq_length: 768,
      offload_embeddings: true,
    });
    expect(c.model.lora).toMatchObject({ rank: 4, alpha: 8 });
    expect(c.game).toMatchObject({ size: 6, target: 2048, p4: 0.1, keys: "bepo", time_limit_s: 5 });
    expect(c.rewards.functions).toEqual(["function_works", "no_cheating", "strategy_succeeds"]);
    expect(c.generation).toMatchObject({
      num_generations: 2,
      max_completion_length: 200,
      temperature: 1,
      reasoning_effort: "low",
    });
    expect(c.training).toMatchObject({
      max_steps: 1000,
      per_device_train_batch_size: 1,
      gradient_accumulation_steps: 4,
      learning_rate: 5e-5,
      lr_scheduler_type: "linear",
      warmup_ratio: 0.1,
      weight_decay: 0.001,
      optim: "adamw_8bit",
      epsilon: 0.2,
      epsilon_high: 0.28,
      delta: 1.5,
      loss_type: "bnpo",
      mask_truncated_completions: true,
    });
    expect(c.output).toMatchObject({ output_dir: "outputs", save_steps: 100 });
  });

  it("tiny is the default and runs on the CPU", () => {
    const c = resolveConfig({});
    expect(c.model.path).toBe("tiny");
    expect(c.model.device).toBe("cpu");
    expect(c.game.size).toBe(4);
    expect(c.training.dynamic_sampling).toBe(true);
  });

  it("an unknown preset is one clear error", () => {
    expect(() => resolveConfig({ preset: "huge" })).toThrow(/unknown preset huge/);
  });
});

describe("layers", () => {
  it("file, then --set, then flags override the preset", () => {
    const path = file("run.yaml", "training:\n  max_steps: 7\n  learning_rate: 1.0e-3\n");
    const c = resolveConfig({
      preset: "seed",
      file: path,
      sets: ["training.learning_rate=2e-4", "output.export_formats=[lora, mxfp4]"],
      flags: { training: { max_steps: 9 }, model: { path: "/models/x" } },
    });
    expect(c.training.learning_rate).toBe(2e-4);
    expect(c.training.max_steps).toBe(9);
    expect(c.training.gradient_accumulation_steps).toBe(4);
    expect(c.output.export_formats).toEqual(["lora", "mxfp4"]);
    expect(c.model.path).toBe("/models/x");
  });

  it("reads JSON files and a file alone stands on the schema defaults", () => {
    const c = resolveConfig({ file: file("run.json", '{"generation": {"num_generations": 4}}') });
    expect(c.generation.num_generations).toBe(4);
    expect(c.model.path).toBeNull();
    expect(c.training.max_steps).toBe(1000);
  });

  it("parses --set values as YAML scalars", () => {
    expect(parseSetFlag("a.b=3")).toEqual({ a: { b: 3 } });
    expect(parseSetFlag("x=true")).toEqual({ x: true });
    expect(parseSetFlag("m.path=/a/b")).toEqual({ m: { path: "/a/b" } });
    expect(() => parseSetFlag("novalue")).toThrow(ConfigError);
  });
});

describe("errors name the field", () => {
  it("an unknown field", () => {
    expect(() => parseConfig({ training: { learning_rat: 1 } })).toThrow(
      "config: unknown field training.learning_rat",
    );
    expect(() => resolveConfig({ sets: ["bogus=1"] })).toThrow(/unknown field bogus/);
  });

  it("a value of the wrong type or range", () => {
    expect(() => parseConfig({ training: { learning_rate: "fast" } })).toThrow(
      /^config: training\.learning_rate: .*expected number/,
    );
    expect(() => parseConfig({ generation: { num_generations: 1 } })).toThrow(
      "config: generation.num_generations: GRPO needs at least 2 generations",
    );
    expect(() => parseConfig({ game: { size: 1 } })).toThrow(
      "config: game.size: must be an integer from 2 to 16",
    );
    expect(() => parseConfig({ rewards: { weights: [1] } })).toThrow(
      "config: rewards.weights: weights must have one value per reward function",
    );
    expect(() => parseConfig({ training: { scale_rewards: "all" } })).toThrow(
      /training\.scale_rewards: .*"group"/,
    );
    expect(() =>
      parseConfig({ training: { one_step_off_policy: true, dynamic_sampling: true } }),
    ).toThrow(
      "config: training.one_step_off_policy: needs dynamic_sampling off (its extra rounds wait for rewards)",
    );
  });

  it("a broken or missing file", () => {
    expect(() => resolveConfig({ file: file("bad.yaml", "a: [1, 2\n") })).toThrow(/not valid YAML/);
    expect(() => resolveConfig({ file: join(dir, "missing.yaml") })).toThrow(/not found/);
    const path = file("list.yaml", "- 1\n- 2\n");
    expect(() => resolveConfig({ file: path })).toThrow(/expected a mapping/);
  });
});
