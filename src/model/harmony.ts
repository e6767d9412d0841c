/**
 * Reading gpt-oss completions in the harmony format. A completion starts right after the
 * prompt's `<|start|>assistant` and reads like
 *
 *   <|channel|>analysis<|message|>thinking...<|end|><|start|>assistant<|channel|>final<|message|>answer<|return|>
 *
 * `parseHarmony` splits such text (decoded with its special tokens) into messages;
 * `answerText` is what the trainer reads: the final channel, or the whole text for a model
 * that does not speak harmony.
 */

export interface HarmonyMessage {
  role: string;
  /** analysis, commentary, final; null when the header names none. */
  channel: string | null;
  /** `to=...` of a tool call. */
  recipient: string | null;
  content: string;
  /** The token that closed the message; null when the text ran out first (truncated). */
  end: "end" | "return" | "call" | null;
}

const MARKERS = /<\|(start|end|return|call|message|channel|constrain)\|>/;

/** True when `text` carries harmony markers. */
export function isHarmony(text: string): boolean {
  return MARKERS.test(text);
}

/** Splits a completion into messages; the first one's role is `role` (the prompt opened it). */
export function parseHarmony(text: string, role = "assistant"): HarmonyMessage[] {
  const messages: HarmonyMessage[] = [];
  const chunks = text.split("<|start|>");
  chunks.forEach((chunk, index) => {
    if (index > 0 || chunk.length > 0) {
      const message = parseMessage(chunk, index === 0 ? role : null);
      if (message) messages.push(message);
    }
  });
  return messages;
}

/** The final channel's text (the last final message), else null. */
export function finalChannel(text: string): string | null {
  const finals = parseHarmony(text).filter((m) => m.channel === "final");
  return finals.at(-1)?.content ?? null;
}

/**
 * What a completion answers: the final channel for harmony text; "" when harmony text has no
 * final channel (e.g. cut off while thinking); the whole text for other models.
 */
export function answerText(text: string): string {
  if (!isHarmony(text)) return text;
  return finalChannel(text) ?? "";
}

function parseMessage(chunk: string, knownRole: string | null): HarmonyMessage | null {
  const bodyAt = chunk.indexOf("<|message|>");
  const header = bodyAt === -1 ? chunk : chunk.slice(0, bodyAt);
  let content = bodyAt === -1 ? "" : chunk.slice(bodyAt + "<|message|>".length);
  let end: HarmonyMessage["end"] = null;
  const endMatch = /<\|(end|return|call)\|>/.exec(content);
  if (endMatch) {
    end = endMatch[1] as "end" | "return" | "call";
    content = content.slice(0, endMatch.index);
  }
  if (bodyAt === -1 && header.trim() === "") return null;

  const channelAt = header.indexOf("<|channel|>");
  const roleText = (channelAt === -1 ? header : header.slice(0, channelAt)).trim();
  const channelText = channelAt === -1 ? "" : header.slice(channelAt + "<|channel|>".length);
  const recipient = /(?:^|\s)to=(\S+?)(?=\s|<\||$)/.exec(header)?.[1] ?? null;
  const role = knownRole ?? roleText.split(/\s+/)[0] ?? "";
  const channel = channelText.split(/\s|<\|/)[0] || null;
  return { role, channel, recipient, content, end };
}
