import { mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InitModelError, initModel } from "../model/initModel.ts";
import { modelCommand } from "./model.ts";
import { UserError } from "./userError.ts";

const run = (args: string[]) => modelCommand().exitOverride().parseAsync(args, { from: "user" });

describe("rl2048 model init", () => {
  it("writes a tiny gpt-oss folder with MXFP4 experts", async () => {
    const out = join(await mkdtemp(join(tmpdir(), "rl2048-model-")), "tiny");
    await run([
      "init",
      "--arch",
      "gpt-oss",
      "--preset",
      "tiny",
      "--out",
      out,
      "--mxfp4",
      "--seed",
      "7",
    ]);
    expect((await readdir(out)).sort()).toEqual([
      "chat_template.jinja",
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "special_tokens_map.json",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    expect(config).toMatchObject({
      model_type: "gpt_oss",
      quantization_config: { quant_method: "mxfp4" },
    });
  });

  it("refuses bad options and an occupied folder with one clear line", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rl2048-model-"));
    await expect(run(["init", "--preset", "huge", "--out", join(dir, "x")])).rejects.toThrow(
      UserError,
    );
    await expect(
      run(["init", "--arch", "llama", "--preset", "tiny", "--out", join(dir, "x")]),
    ).rejects.toThrow(/--arch/);
    const taken = join(dir, "taken");
    await mkdir(taken);
    await writeFile(join(taken, "notes.txt"), "mine");
    await expect(run(["init", "--preset", "tiny", "--out", taken])).rejects.toThrow(
      /already exists/,
    );
    // The engine side refuses it too (exit 2), and leaves the folder as it was.
    const error = await initModel({ preset: "tiny", out: taken }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InitModelError);
    expect(error).toMatchObject({
      exitCode: 2,
      message: expect.stringContaining("already exists"),
    });
    expect(await readdir(taken)).toEqual(["notes.txt"]);
  });
});
