import { describe, expect, it } from "vitest";
import { extractStrategy, finalChannel } from "./extract.ts";

const FN = "def strategy(board):\n    return 'a'";

describe("extractStrategy", () => {
  it("takes the seed's fenced block, dropping the python tag", () => {
    expect(extractStrategy("Here:\n```python\n" + FN + "\n```\nDone")).toEqual({
      ok: true,
      code: FN,
    });
    expect(extractStrategy("```\n" + FN + "\n```")).toEqual({ ok: true, code: FN });
  });
  it("starts at the first def and needs the exact signature", () => {
    expect(extractStrategy("```python\nimport math\n" + FN + "\n```")).toEqual({
      ok: true,
      code: FN,
    });
    const wrong = extractStrategy("```python\ndef strategy(b):\n    return 'a'\n```");
    expect(wrong).toEqual({ ok: false, reason: "wrong signature: def strategy(b):" });
    const helperFirst = extractStrategy("```python\ndef helper():\n  pass\n" + FN + "\n```");
    expect(helperFirst.ok).toBe(false);
  });
  it("accepts a bare def outside fences, up to where the function ends", () => {
    const text = "Sure.\n" + FN + "\n\n    # still inside\nThat is all.\n";
    expect(extractStrategy(text)).toEqual({ ok: true, code: FN + "\n\n    # still inside" });
  });
  it("reads only the final channel of a harmony completion", () => {
    const text =
      "<|channel|>analysis<|message|>```python\ndef strategy(board):\n    return 'u'\n```<|end|>" +
      "<|start|>assistant<|channel|>final<|message|>```python\n" +
      FN +
      "\n```<|return|>";
    expect(finalChannel(text)).toBe("```python\n" + FN + "\n```");
    expect(extractStrategy(text)).toEqual({ ok: true, code: FN });
    const cut = "<|channel|>final<|message|>" + FN; // truncated: no end token
    expect(extractStrategy(cut)).toEqual({ ok: true, code: FN });
  });
  it("says why it failed", () => {
    expect(extractStrategy("no code here")).toEqual({
      ok: false,
      reason: "no fenced block and no function",
    });
    expect(extractStrategy("```python\nprint(1)\n```")).toEqual({
      ok: false,
      reason: "the fenced block has no function",
    });
    expect(extractStrategy("```python\n" + FN)).toEqual({
      ok: false,
      reason: "unclosed fenced block",
    });
    expect(extractStrategy("def play(board):\n  pass").ok).toBe(false);
  });
});
