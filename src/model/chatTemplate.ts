/**
 * A model folder's chat template (`chat_template.jinja`, else `chat_template` in
 * tokenizer_config.json) rendered with @huggingface/jinja, as transformers'
 * `apply_chat_template(..., tokenize=False)` renders it (tested against it).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";

export interface ChatMessage {
  role: "system" | "developer" | "user" | "assistant";
  content: string;
  /** Reasoning of an assistant turn (harmony's analysis channel). */
  thinking?: string;
}

export type ReasoningEffort = "low" | "medium" | "high";

export interface RenderOptions {
  addGenerationPrompt?: boolean;
  /** gpt-oss (harmony): "Reasoning: low|medium|high" in the system message. */
  reasoningEffort?: ReasoningEffort;
  /** More template variables (e.g. `model_identity`, `current_date`). */
  variables?: Record<string, unknown>;
}

export class ChatTemplate {
  private readonly template: Template;

  /** `specialTokens`: bos_token, eos_token, ... as transformers passes them to the template. */
  constructor(
    readonly source: string,
    private readonly specialTokens: Record<string, string> = {},
  ) {
    this.template = new Template(source);
  }

  /** Reads the template of `folder`; throws when it has none. */
  static async fromFolder(folder: string): Promise<ChatTemplate> {
    const config = await readTokenizerConfig(folder);
    const source =
      (await readOptional(join(folder, "chat_template.jinja"))) ?? configTemplate(config);
    if (source === undefined) throw new Error(`${folder}: no chat template (chat_template.jinja)`);
    const specialTokens: Record<string, string> = {};
    for (const name of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
      const value = config[name];
      if (typeof value === "string") specialTokens[name] = value;
    }
    return new ChatTemplate(source, specialTokens);
  }

  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    const context: Record<string, unknown> = {
      ...this.specialTokens,
      ...options.variables,
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    };
    if (options.reasoningEffort) context.reasoning_effort = options.reasoningEffort;
    return this.template.render(context);
  }
}

async function readTokenizerConfig(folder: string): Promise<Record<string, unknown>> {
  const text = await readOptional(join(folder, "tokenizer_config.json"));
  return text === undefined ? {} : (JSON.parse(text) as Record<string, unknown>);
}

/** `chat_template` of tokenizer_config.json: a string, or a list of named ones ("default"). */
function configTemplate(config: Record<string, unknown>): string | undefined {
  const value = config.chat_template;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value as { name?: string; template?: string }[];
    return named.find((t) => t.name === "default")?.template;
  }
  return undefined;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
