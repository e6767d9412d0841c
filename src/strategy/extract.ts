/**
 * Pulls `def strategy(board): ...` out of a model's completion.
 *
 * 1. Harmony format: when the text has a `final` channel, only that message counts
 *    (`<|channel|>final<|message|>` up to `<|return|>`, `<|end|>` or the end of the text).
 * 2. The seed's rule: the first fenced block, a leading `python` tag dropped, cut at the first
 *    `def`, accepted only if it starts with `def strategy(board):`.
 * 3. Otherwise a bare `def strategy(board):` outside fences, up to where the function ends
 *    (the first later line that is neither blank nor indented).
 */

export type Extraction = { ok: true; code: string } | { ok: false; reason: string };

const SIGNATURE = "def strategy(board):";
const FINAL_START = "<|channel|>final<|message|>";
const FINAL_END = /<\|return\|>|<\|end\|>/;

/** The `final` channel's message of a harmony completion, or undefined when there is none. */
export function finalChannel(text: string): string | undefined {
  const start = text.lastIndexOf(FINAL_START);
  if (start < 0) return undefined;
  const body = text.slice(start + FINAL_START.length);
  const end = body.search(FINAL_END);
  return end < 0 ? body : body.slice(0, end);
}

/** The seed's fenced-block rule; undefined when the text has no complete fenced block. */
function fromFence(text: string): Extraction | undefined {
  const open = text.indexOf("```");
  if (open < 0) return undefined;
  const close = text.indexOf("```", open + 3);
  if (close < 0) return undefined;
  let block = text.slice(open + 3, close).trim();
  if (block.startsWith("python\n")) block = block.slice("python\n".length);
  const def = block.indexOf("def");
  if (def < 0) return { ok: false, reason: "the fenced block has no function" };
  block = block.slice(def);
  if (!block.startsWith(SIGNATURE)) {
    const firstLine = block.split("\n", 1)[0]!;
    return { ok: false, reason: `wrong signature: ${firstLine.slice(0, 80)}` };
  }
  return { ok: true, code: block };
}

/** A bare `def strategy(board):` at the start of a line outside fences, up to the end of its body. */
function fromBareDef(text: string): Extraction | undefined {
  const outside = text.replace(/```[\s\S]*?(```|$)/g, "");
  const match = /^def strategy\(board\):/m.exec(outside);
  if (!match) return undefined;
  const lines = outside.slice(match.index).split("\n");
  let end = 1;
  for (; end < lines.length; end++) {
    const line = lines[end]!;
    if (line.trim() !== "" && !/^[ \t]/.test(line)) break;
  }
  const code = lines.slice(0, end).join("\n").trimEnd();
  return { ok: true, code };
}

/** Extracts the strategy's source from a completion, or says why it could not. */
export function extractStrategy(completion: string): Extraction {
  const text = finalChannel(completion) ?? completion;
  const fenced = fromFence(text);
  if (fenced?.ok) return fenced;
  const bare = fromBareDef(text);
  if (bare) return bare;
  if (fenced) return fenced;
  if (text.includes("```")) return { ok: false, reason: "unclosed fenced block" };
  if (/\bdef\s+\w+/.test(text)) return { ok: false, reason: "no def strategy(board): found" };
  return { ok: false, reason: "no fenced block and no function" };
}
