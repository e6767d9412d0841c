import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ChatTemplate, type ChatMessage, type RenderOptions } from "./chatTemplate.ts";
import { initModel } from "./initModel.ts";
import { pythonJson } from "./pythonReference.ts";

interface Case {
  messages: ChatMessage[];
  options: RenderOptions;
}

const PYTHON_RENDER = `
import json, sys
from transformers import AutoTokenizer
request = json.load(sys.stdin)
tok = AutoTokenizer.from_pretrained(request["folder"])
out = []
for case in request["cases"]:
    kwargs = dict(case["options"].get("variables") or {})
    if "reasoningEffort" in case["options"]:
        kwargs["reasoning_effort"] = case["options"]["reasoningEffort"]
    out.append(tok.apply_chat_template(case["messages"], tokenize=False,
        add_generation_prompt=case["options"].get("addGenerationPrompt", False), **kwargs))
print(json.dumps(out))
`;

const user = (content: string): ChatMessage => ({ role: "user", content });

const CASES: Case[] = [
  { messages: [user("Write a 2048 strategy.")], options: { addGenerationPrompt: true } },
  ...(["low", "medium", "high"] as const).map((effort) => ({
    messages: [user("Hi é")],
    options: { addGenerationPrompt: true, reasoningEffort: effort },
  })),
  {
    messages: [{ role: "system", content: "Answer in Python only." }, user("Go")],
    options: { addGenerationPrompt: true, reasoningEffort: "low" },
  },
  {
    messages: [
      user("First"),
      { role: "assistant", content: "One", thinking: "old thoughts are dropped" },
      user("Second"),
      {
        role: "assistant",
        content: "```python\ndef strategy(board):\n    return 'W'\n```",
        thinking: "kept",
      },
    ],
    options: { reasoningEffort: "low" },
  },
  {
    messages: [user("Hello"), { role: "assistant", content: "Hi" }],
    options: {
      addGenerationPrompt: true,
      variables: { current_date: "2025-08-05", model_identity: "You are a 2048 bot." },
    },
  },
];

describe("ChatTemplate", () => {
  let folder: string;

  beforeAll(async () => {
    folder = join(await mkdtemp(join(tmpdir(), "rl2048-template-")), "tiny");
    await initModel({ preset: "tiny", out: folder, device: "cpu" });
  });

  it("renders the harmony template exactly as transformers' apply_chat_template", async () => {
    const template = await ChatTemplate.fromFolder(folder);
    const expected = pythonJson<string[]>(PYTHON_RENDER, { folder, cases: CASES });
    CASES.forEach((c, i) => expect(template.render(c.messages, c.options)).toBe(expected[i]));
  });

  it("writes the harmony format", async () => {
    const template = await ChatTemplate.fromFolder(folder);
    expect(
      template.render([user("2+2?")], { addGenerationPrompt: true, reasoningEffort: "low" }),
    ).toBe(
      "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n" +
        "Knowledge cutoff: 2024-06\n\nReasoning: low\n\n" +
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>" +
        "<|start|>user<|message|>2+2?<|end|><|start|>assistant",
    );
    const history = template.render(CASES[5]!.messages, CASES[5]!.options);
    expect(history).not.toContain("old thoughts");
    expect(history).toContain(
      "<|start|>assistant<|channel|>final<|message|>One<|end|><|start|>user<|message|>Second<|end|>" +
        "<|start|>assistant<|channel|>analysis<|message|>kept<|end|><|start|>assistant<|channel|>final<|message|>",
    );
    expect(history.endsWith("```<|return|>")).toBe(true);
    expect(() => template.render([{ role: "tool" } as unknown as ChatMessage])).toThrow(
      /unsupported role/,
    );
  });

  it("reads a template from tokenizer_config.json (e.g. ChatML models)", async () => {
    const chatml = join(await mkdtemp(join(tmpdir(), "rl2048-chatml-")), "chatml");
    await mkdir(chatml);
    const source =
      "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    await writeFile(
      join(chatml, "tokenizer_config.json"),
      JSON.stringify({ chat_template: source, eos_token: "<|im_end|>" }),
    );
    const template = await ChatTemplate.fromFolder(chatml);
    expect(template.render([user("hi")], { addGenerationPrompt: true })).toBe(
      "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("says when a folder has no template", async () => {
    const empty = await mkdtemp(join(tmpdir(), "rl2048-empty-"));
    await expect(ChatTemplate.fromFolder(empty)).rejects.toThrow(/no chat template/);
  });
});
