import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ModelTokenizer } from "../model/tokenizer.ts";
import { pythonJson } from "../model/pythonReference.ts";
import { tinyPolicy, type TinyPolicyInput, type TinyPolicyProgress } from "./tinyPolicy.ts";
import { strategyPrompt } from "../train/prompt.ts";
import { generateCorpus } from "../corpus/corpus.ts";
import { KEY_PRESETS } from "../game/keys.ts";

// A few warm-start steps on a small corpus: enough to check the build, not to learn.
const small: TinyPolicyInput = {
  prompt: strategyPrompt("wasd"),
  keys: "wasd",
  corpus_size: 48,
  sft_steps: 3,
  sft_batch: 4,
};
const dirs: string[] = [];
function cacheDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "rl2048-tiny-"));
  dirs.push(dir);
  return dir;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const weights = (folder: string) => readFileSync(join(folder, "model.safetensors"));

describe("tiny policy builder", { timeout: 300_000 }, () => {
  it("builds the same folder for the same seed, caches it, and another seed differs", async () => {
    const progress: TinyPolicyProgress[] = [];
    const cacheA = cacheDir();
    const a = await tinyPolicy(small, { cacheDir: cacheA, onProgress: (p) => progress.push(p) });
    expect(progress.some((p) => p.step === 3)).toBe(true);
    const b = await tinyPolicy(small, { cacheDir: cacheDir() });
    expect(weights(b).equals(weights(a))).toBe(true);
    expect(readFileSync(join(b, "tokenizer.json"), "utf8")).toBe(
      readFileSync(join(a, "tokenizer.json"), "utf8"),
    );

    const again: TinyPolicyProgress[] = [];
    expect(await tinyPolicy(small, { cacheDir: cacheA, onProgress: (p) => again.push(p) })).toBe(a);
    expect(again).toEqual([]); // served from the cache, no build

    const other = await tinyPolicy({ ...small, seed: 1 }, { cacheDir: cacheA });
    expect(other).not.toBe(a);
    expect(weights(other).equals(weights(a))).toBe(false);

    // The TypeScript tokenizer reads the line-level BPE exactly as Python's does.
    const texts = generateCorpus({ n: 12, seed: 5, keys: KEY_PRESETS.wasd }).map((r) => r.text);
    const tokenizer = await ModelTokenizer.fromFolder(a);
    const expected = pythonJson<number[][]>(
      [
        "import json, sys",
        "from transformers import AutoTokenizer",
        "data = json.load(sys.stdin)",
        "t = AutoTokenizer.from_pretrained(data['folder'])",
        "print(json.dumps([t.encode(x, add_special_tokens=False) for x in data['texts']]))",
      ].join("\n"),
      { folder: a, texts },
    );
    expect(texts.map((t) => tokenizer.encode(t))).toEqual(expected);
    expect(tokenizer.decode(expected[0]!)).toBe(texts[0]);
  });
});
