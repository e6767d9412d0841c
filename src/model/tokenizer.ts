/**
 * A model folder's tokenizer (`tokenizer.json`, `tokenizer_config.json`) through
 * @huggingface/tokenizers. Encoding gives the same ids as Python `tokenizers` (tested), and
 * special tokens written in the text (`<|start|>`, `<|end|>`, ...) become their ids.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";

export class ModelTokenizer {
  private constructor(
    private readonly hf: HfTokenizer,
    /** tokenizer_config.json as read (bos_token, eos_token, chat_template, ...). */
    readonly config: Record<string, unknown>,
  ) {}

  /** Loads `tokenizer.json` (required) and `tokenizer_config.json` (optional) from `folder`. */
  static async fromFolder(folder: string): Promise<ModelTokenizer> {
    const tokenizerJson = await readJson(join(folder, "tokenizer.json"));
    if (tokenizerJson === undefined) throw new Error(`${folder}: no tokenizer.json`);
    const config = (await readJson(join(folder, "tokenizer_config.json"))) ?? {};
    return new ModelTokenizer(
      new HfTokenizer(tokenizerJson, config),
      config as Record<string, unknown>,
    );
  }

  /** Token ids of `text`, as is: no BOS or other tokens added around it. */
  encode(text: string): number[] {
    return this.hf.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of `ids`; special tokens are kept unless `skipSpecialTokens`. */
  decode(ids: readonly number[], { skipSpecialTokens = false } = {}): string {
    if (ids.length === 0) return "";
    return this.hf.decode([...ids], {
      skip_special_tokens: skipSpecialTokens,
      clean_up_tokenization_spaces: false,
    });
  }

  /** The id of a token (e.g. "<|return|>"); throws when the vocabulary lacks it. */
  tokenId(token: string): number {
    const id = this.hf.token_to_id(token);
    if (id === undefined) throw new Error(`the tokenizer has no token ${JSON.stringify(token)}`);
    return id;
  }

  /** The id of a token, or undefined when the vocabulary lacks it. */
  maybeTokenId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** Ids of the special (added) tokens, by their text. */
  specialTokenIds(): Map<string, number> {
    const ids = new Map<string, number>();
    for (const [id, token] of this.hf.get_added_tokens_decoder()) {
      if (token.special) ids.set(token.content, id);
    }
    return ids;
  }

  /** Named special tokens from tokenizer_config.json (bos_token, eos_token, pad_token). */
  namedToken(name: "bos_token" | "eos_token" | "pad_token"): string | undefined {
    const value = this.config[name];
    if (typeof value === "string") return value;
    if (value && typeof value === "object" && "content" in value) return String(value.content);
    return undefined;
  }
}

async function readJson(path: string): Promise<object | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as object;
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
}
