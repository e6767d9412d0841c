import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { initModel } from "./initModel.ts";
import { pythonJson } from "./pythonReference.ts";
import { ModelTokenizer } from "./tokenizer.ts";

const FIXED_TEXTS = [
  "",
  "Hello, world!",
  'def strategy(board):\n    return "W"  # up\n',
  "    indented\n\n\n\ttabs\r\nwindows\r\n  trailing spaces   ",
  "Café déjà vu: é è ê ë à ç ï ô ù — naïve résumé",
  "日本語のテキスト 中文 한국어 русский ελληνικά עברית العربية हिन्दी",
  "emoji 🎮🧩🔢 family 👨‍👩‍👧 flags 🇫🇷 combining e\u0301 a\u0308",
  "I'M HERE, we'll see, they've DONE it, it's O'Neil's",
  "1234567890 3.14159 1e-5 0xFF 2048 4096",
  "<|start|>user<|message|>Write a 2048 strategy.<|end|><|start|>assistant",
  "<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>final<|message|>ok<|return|>",
  "<|startoftext|><|endoftext|><|constrain|>json<|call|><|reserved_200000|>",
  "not special: <|start |> <| end|> <|unknown|> <unused3>",
  "```python\ndef strategy(board):\n    import random\n    return random.choice('wasd')\n```",
];

const PYTHON_ENCODE = `
import json, sys
from tokenizers import Tokenizer
request = json.load(sys.stdin)
tok = Tokenizer.from_file(request["path"])
ids = [tok.encode(t, add_special_tokens=False).ids for t in request["texts"]]
print(json.dumps({"ids": ids, "decoded": [tok.decode(i, skip_special_tokens=False) for i in ids]}))
`;

const PYTHON_20B_TOKENIZER = `
import json, sys
from pathlib import Path
from rl2048_engine.init_model import PRESETS, write_tokenizer
folder = Path(json.load(sys.stdin))
folder.mkdir(parents=True)
write_tokenizer(folder, PRESETS["20b"])
print("null")
`;

function randomTexts(): string[] {
  const piece = fc.oneof(
    fc.string({ unit: "grapheme", maxLength: 30 }),
    fc.string({ unit: "binary", maxLength: 30 }),
    fc.constantFrom("<|start|>", "<|end|>", "<|message|>", " ", "\n", "é", "'s", "2048"),
  );
  return fc.sample(
    fc.array(piece, { maxLength: 6 }).map((parts) => parts.join("")),
    {
      seed: 2048,
      numRuns: 300,
    },
  );
}

describe.each([
  ["tiny", "tiny"],
  ["published 20b layout", "20b"],
])("ModelTokenizer (%s) matches Python tokenizers", (_label, preset) => {
  let folder: string;
  let tokenizer: ModelTokenizer;

  beforeAll(async () => {
    folder = join(await mkdtemp(join(tmpdir(), "rl2048-tokenizer-")), preset);
    if (preset === "tiny") await initModel({ preset: "tiny", out: folder, device: "cpu" });
    else pythonJson(PYTHON_20B_TOKENIZER, folder);
    tokenizer = await ModelTokenizer.fromFolder(folder);
  });

  it("encodes and decodes exactly as Python does", () => {
    const texts = [...FIXED_TEXTS, ...randomTexts()];
    const python = pythonJson<{ ids: number[][]; decoded: string[] }>(PYTHON_ENCODE, {
      path: join(folder, "tokenizer.json"),
      texts,
    });
    texts.forEach((text, i) => {
      const ids = tokenizer.encode(text);
      expect(ids, JSON.stringify(text)).toEqual(python.ids[i]);
      expect(tokenizer.decode(ids)).toBe(python.decoded[i]);
    });
  });

  it("has the harmony special tokens at their ids", () => {
    const offset = preset === "tiny" ? 2000 - 199998 : 0;
    const published: Record<string, number> = {
      "<|startoftext|>": 199998,
      "<|endoftext|>": 199999,
      "<|return|>": 200002,
      "<|constrain|>": 200003,
      "<|channel|>": 200005,
      "<|start|>": 200006,
      "<|end|>": 200007,
      "<|message|>": 200008,
      "<|call|>": 200012,
    };
    for (const [token, id] of Object.entries(published)) {
      expect(tokenizer.tokenId(token), token).toBe(id + offset);
      expect(tokenizer.specialTokenIds().get(token)).toBe(id + offset);
    }
    expect(tokenizer.namedToken("eos_token")).toBe("<|return|>");
    expect(tokenizer.maybeTokenId("<|nope|>")).toBeUndefined();
    expect(() => tokenizer.tokenId("<|nope|>")).toThrow(/no token/);
    const ids = tokenizer.encode("<|start|>assistant<|channel|>final<|message|>é<|return|>");
    expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toBe("assistantfinalé");
  });
});
