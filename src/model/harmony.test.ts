import { describe, expect, it } from "vitest";
import { answerText, finalChannel, isHarmony, parseHarmony } from "./harmony.ts";

const COMPLETION =
  "<|channel|>analysis<|message|>Keep the big tile in a corner.<|end|>" +
  "<|start|>assistant<|channel|>final<|message|>```python\ndef strategy(board):\n    return 'W'\n```<|return|>";

describe("harmony", () => {
  it("splits a completion into its channels", () => {
    expect(parseHarmony(COMPLETION)).toEqual([
      {
        role: "assistant",
        channel: "analysis",
        recipient: null,
        content: "Keep the big tile in a corner.",
        end: "end",
      },
      {
        role: "assistant",
        channel: "final",
        recipient: null,
        content: "```python\ndef strategy(board):\n    return 'W'\n```",
        end: "return",
      },
    ]);
    expect(finalChannel(COMPLETION)).toContain("def strategy(board)");
  });

  it("reads tool calls and truncated messages", () => {
    const call =
      '<|channel|>commentary to=functions.play <|constrain|>json<|message|>{"key": "W"}<|call|>';
    expect(parseHarmony(call)[0]).toMatchObject({
      channel: "commentary",
      recipient: "functions.play",
      content: '{"key": "W"}',
      end: "call",
    });
    const cut = "<|channel|>analysis<|message|>Let me think about";
    expect(parseHarmony(cut)).toEqual([
      {
        role: "assistant",
        channel: "analysis",
        recipient: null,
        content: "Let me think about",
        end: null,
      },
    ]);
    expect(answerText(cut)).toBe("");
  });

  it("leaves text from models that do not speak harmony as it is", () => {
    const plain = "def strategy(board):\n    return 'A'";
    expect(isHarmony(plain)).toBe(false);
    expect(answerText(plain)).toBe(plain);
    expect(answerText(COMPLETION)).toBe("```python\ndef strategy(board):\n    return 'W'\n```");
  });
});
