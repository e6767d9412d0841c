import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineClient, EngineError } from "./engineClient.ts";
import { initModel } from "./initModel.ts";
import { ModelTokenizer } from "./tokenizer.ts";
import { ChatTemplate } from "./chatTemplate.ts";

/** A stand-in engine for the protocol's failure paths (the real one is tested below). */
const FAKE_ENGINE = String.raw`
import json, sys, time
if sys.argv[1:] == ["crash"]:  # dies at start, as Python does on a missing module
    sys.exit("Traceback (most recent call last):\nModuleNotFoundError: No module named 'pydantic'")
protocol = int(sys.argv[1]) if len(sys.argv) > 1 else 1
for line in sys.stdin:
    req = json.loads(line)
    method, rid = req["method"], req["id"]
    if method == "info":
        reply = {"result": {"protocol": protocol, "engine_version": "0", "python": "3", "torch": "0",
                            "transformers": "0", "peft": "0", "device": "cpu", "cuda": None, "memory": {}}}
    elif method == "generate":
        p = req["params"]
        if p.get("max_new_tokens") == 0:
            reply = {"error": {"kind": "bad_request", "message": "max_new_tokens must be at least 1"}}
        elif p.get("max_new_tokens") == 99:  # a reply that does not match the schema
            reply = {"result": {"completions": [{"ids": "oops"}]}}
        else:
            reply = {"result": {"completions": [{"prompt_index": 0, "ids": p["prompts"][0][:1], "logprobs": [-0.5], "finish_reason": "length"}]}}
    elif method == "load":
        if req["params"]["model"] == "die":
            print("loading the model", file=sys.stderr)
            print("RuntimeError: something broke", file=sys.stderr, flush=True)
            sys.exit(3)
        if req["params"]["model"] == "hang":
            time.sleep(60)
        if req["params"]["model"] == "garbage":
            print("this is not json", flush=True)
            continue
        reply = {"error": {"kind": "model_folder", "message": "no config.json in " + req["params"]["model"]}}
    elif method == "shutdown":
        print(json.dumps({"id": rid, "result": {}}), flush=True)
        sys.exit(0)
    else:
        reply = {"error": {"kind": "bad_request", "message": "unknown method " + repr(method)}}
    print(json.dumps({"id": rid, **reply}), flush=True)
`;

describe("EngineClient protocol handling (fake engine)", () => {
  let script: string;
  const start = (extra: string[] = []) =>
    EngineClient.start({ args: [script, ...extra], timeoutMs: 5_000 });

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), "rl2048-fake-engine-"));
    script = join(dir, "fake_engine.py");
    await writeFile(script, FAKE_ENGINE);
  });

  it("checks the protocol on start and sends typed requests", async () => {
    const engine = await start();
    expect(engine.startInfo.protocol).toBe(1);
    const result = await engine.generate({ prompts: [[5, 6]], max_new_tokens: 3 });
    expect(result.completions[0]).toEqual({
      prompt_index: 0,
      ids: [5],
      logprobs: [-0.5],
      finish_reason: "length",
    });
    await engine.shutdown();
    expect(engine.alive).toBe(false);
  });

  it("turns engine errors into EngineError and stays usable", async () => {
    const engine = await start();
    const error = await engine.load({ model: "missing" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EngineError);
    expect(error).toMatchObject({ kind: "model_folder", method: "load" });
    expect((error as EngineError).message).toBe("no config.json in missing");
    await expect(engine.generate({ prompts: [[1]], max_new_tokens: 0 })).rejects.toMatchObject({
      kind: "bad_request",
    });
    await expect(engine.generate({ prompts: [[1]], max_new_tokens: 99 })).rejects.toMatchObject({
      kind: "protocol",
      message: expect.stringContaining("completions.0"),
    });
    expect((await engine.generate({ prompts: [[7]], max_new_tokens: 1 })).completions).toHaveLength(
      1,
    );
    await engine.shutdown();
  });

  it("queues concurrent calls: one request at a time, answers in order", async () => {
    const engine = await start();
    const results = await Promise.all(
      [1, 2, 3, 4].map((n) => engine.generate({ prompts: [[n]], max_new_tokens: 1 })),
    );
    expect(results.map((r) => r.completions[0]?.ids[0])).toEqual([1, 2, 3, 4]);
    await engine.shutdown();
  });

  it("refuses an engine that speaks another protocol", async () => {
    await expect(start(["99"])).rejects.toMatchObject({
      kind: "protocol",
      message: expect.stringContaining("protocol 99"),
    });
  });

  it("notices a dead engine, with its last stderr lines, and restarts it", async () => {
    const engine = await start();
    const error = (await engine.load({ model: "die" }).catch((e: unknown) => e)) as EngineError;
    expect(error.kind).toBe("engine_died");
    expect(error.message).toContain("exited with code 3");
    expect(error.message).toContain("RuntimeError: something broke");
    expect(engine.alive).toBe(false);
    await expect(engine.info()).rejects.toMatchObject({ kind: "engine_died" });
    await engine.restart();
    expect(engine.alive).toBe(true);
    expect((await engine.info()).protocol).toBe(1);
    await engine.shutdown();
  });

  it("shows the traceback of an engine that dies as it starts", async () => {
    const error = (await start(["crash"]).catch((e: unknown) => e)) as EngineError;
    expect(error.kind).toBe("engine_died");
    // The first line (all a failed run prints) ends with the exception.
    expect(error.message.split("\n")[0]).toBe(
      "the engine exited with code 1: ModuleNotFoundError: No module named 'pydantic'",
    );
    expect(error.message).toContain("Traceback (most recent call last):");
  });

  it("stops an engine that does not answer in time", async () => {
    const engine = await start();
    await expect(engine.load({ model: "hang" }, { timeoutMs: 300 })).rejects.toMatchObject({
      kind: "timeout",
      method: "load",
    });
    expect(engine.alive).toBe(false);
    await engine.shutdown();
  });

  it("stops an engine whose output is not the protocol", async () => {
    const engine = await start();
    await expect(engine.load({ model: "garbage" })).rejects.toMatchObject({
      kind: "protocol",
      message: expect.stringContaining("not JSON"),
    });
    expect(engine.alive).toBe(false);
    await engine.shutdown();
  });

  it("says clearly when the Python cannot be started", async () => {
    await expect(
      EngineClient.start({ python: "/nonexistent/python", timeoutMs: 5_000 }),
    ).rejects.toMatchObject({ kind: "spawn", message: expect.stringContaining("RL2048_PYTHON") });
  });
});

describe("EngineClient with the real engine and a tiny gpt-oss folder", () => {
  let folder: string;
  let engine: EngineClient;

  beforeAll(async () => {
    folder = join(await mkdtemp(join(tmpdir(), "rl2048-engine-")), "tiny");
    await initModel({ preset: "tiny", out: folder, mxfp4: true, seed: 3, device: "cpu" });
    engine = await EngineClient.start({ timeoutMs: 120_000 });
  });

  afterAll(async () => {
    await engine?.shutdown();
  });

  it("loads, generates from a rendered prompt repeatably, and reports bad ids", async () => {
    expect(engine.startInfo).toMatchObject({ protocol: 1, device: expect.any(String) });
    const tokenizer = await ModelTokenizer.fromFolder(folder);
    const template = await ChatTemplate.fromFolder(folder);
    const loaded = await engine.load({
      model: folder,
      dtype: "float32",
      device: "cpu",
      seed: 1,
      lora: { rank: 4, alpha: 8 },
    });
    expect(loaded.vocab_size).toBe(2048);
    expect(loaded.stop_token_ids).toEqual(
      ["<|return|>", "<|endoftext|>", "<|call|>"].map((t) => tokenizer.tokenId(t)),
    );

    const prompt = tokenizer.encode(
      template.render([{ role: "user", content: "Write a 2048 strategy." }], {
        addGenerationPrompt: true,
        reasoningEffort: "low",
      }),
    );
    const request = { prompts: [prompt], n: 2, max_new_tokens: 8, temperature: 1, seed: 42 };
    const first = await engine.generate(request);
    const again = await engine.generate(request);
    expect(first.completions).toHaveLength(2);
    expect(again).toEqual(first);
    for (const c of first.completions) {
      expect(c.ids.length).toBe(c.logprobs.length);
      expect(c.finish_reason === "stop" || c.ids.length === 8).toBe(true);
    }

    const error = await engine
      .generate({ prompts: [[5, 99_999]], max_new_tokens: 1 })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "bad_request", message: expect.stringContaining("99999") });
    const scored = await engine.logprobs({
      items: [{ prompt, completion: first.completions[0]!.ids }],
    });
    const sampled = first.completions[0]!.logprobs;
    scored.policy[0]!.forEach((lp, i) => expect(lp).toBeCloseTo(sampled[i]!, 3));
  });
});
