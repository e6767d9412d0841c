import { describe, expect, it } from "vitest";
import { EngineError } from "../model/engineClient.ts";
import { describeFailure } from "./session.ts";

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
