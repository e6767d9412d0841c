/**
 * Key presets and key parsing. A key is trimmed and lower-cased the way Python's
 * `key.strip().lower()` does (the seed's rule), then looked up in the preset; anything else
 * (including "q" and the empty string) is not a move and fails the game.
 */

export type Direction = "up" | "left" | "down" | "right";

export const DIRECTIONS: readonly Direction[] = ["up", "left", "down", "right"];

export const KEY_PRESETS = {
  bepo: { up: "é", left: "a", down: "u", right: "i" },
  wasd: { up: "w", left: "a", down: "s", right: "d" },
} as const satisfies Record<string, Record<Direction, string>>;

export type KeyPreset = keyof typeof KEY_PRESETS;

export const KEY_PRESET_NAMES = Object.keys(KEY_PRESETS) as KeyPreset[];

// The characters Python's str.strip() removes (str.isspace), which differ from JS trim().
const PY_SPACE =
  "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, "g");

/** Python's `key.strip().lower()`. */
export function normalizeKey(key: string): string {
  return key.replace(PY_STRIP, "").toLowerCase();
}

/** The direction a key means under a preset, or undefined when it is not a move. */
export function keyDirection(preset: KeyPreset, key: string): Direction | undefined {
  const k = normalizeKey(key);
  const keys = KEY_PRESETS[preset];
  for (const direction of DIRECTIONS) if (keys[direction] === k) return direction;
  return undefined;
}
