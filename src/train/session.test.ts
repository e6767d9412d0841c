import { describe, expect, it } from "vitest";
import { EngineError } from "../model/engineClient.ts";
import { parseConfig } from "./config.ts";
import { describeFailure, describeLoaded, loadParams } from "./session.ts";

describe("describeFailure", () => {
  it("names a dead engine's exception in its one line", () => {
    const died = new EngineError(
      "engine_died",
      "the engine exited with code 1: ModuleNotFoundError: No module named 'pydantic'\n" +
        "its last stderr lines:\nTraceback (most recent call last):\n" +
        "  File \"server.py\", line 20\nModuleNotFoundError: No module named 'pydantic'",
    );
    expect(describeFailure(died)).toBe(
      "the engine stopped: the engine exited with code 1: ModuleNotFoundError: No module named 'pydantic'",
    );
    const killed = new EngineError("engine_died", "the engine was killed by SIGKILL");
    expect(describeFailure(killed)).toBe("the engine stopped: the engine was killed by SIGKILL");
  });

  it("keeps other errors to their first line", () => {
    const bad = new EngineError("bad_request", "max_new_tokens must be at least 1\ndetails");
    expect(describeFailure(bad)).toBe("engine bad_request: max_new_tokens must be at least 1");
    expect(describeFailure(new Error("no config.json in x\nmore"))).toBe("no config.json in x");
  });
});

describe("describeLoaded", () => {
  const info = {
    params_total: 20_914_757_184,
    params_trainable: 3_981_312,
    vocab_size: 201_088,
    stop_token_ids: [200002],
    device: "cuda:0",
    dtype: "bfloat16",
    memory: { reserved: 13.9 * 2 ** 30 },
  };
  const params = loadParams(parseConfig({ model: { fast: true } }), "/m");

  it("says what was loaded where, and that a GPU's first step compiles", () => {
    expect(describeLoaded(info, { ...params, experts: "mxfp4" })).toBe(
      "loaded on cuda:0 (bfloat16, MXFP4 experts packed, 13.9 GiB held): 20.9B parameters, 4.0M trainable; " +
        "the first step compiles the fast paths (two to three minutes on a fresh machine, then cached on disk)",
    );
  });

  it("on the CPU: no compile note, no memory", () => {
    const cpu = { ...info, device: "cpu", dtype: "float32", memory: {}, params_total: 4_200_000 };
    expect(describeLoaded(cpu, { ...params, experts: "bf16" })).toBe(
      "loaded on cpu (float32): 4.2M parameters, 4.0M trainable",
    );
  });
});
