/**
 * The seed's prompt, with the keys of the chosen preset (the seed's own run used bepo).
 * Rendered with the model's chat template (reasoning effort from the config) by the trainer.
 */
import { KEY_PRESETS, type KeyPreset } from "../game/keys.ts";

export function strategyPrompt(keys: KeyPreset): string {
  const { up, left, down, right } = KEY_PRESETS[keys];
  const actions = [up, left, down, right].map((k) => `"${k}"`).join(", ");
  return [
    "Create a new short 2048 strategy using only native Python code.",
    "You are given a list of list of numbers for the current board state.",
    `Output one action for ${actions} on what is the optimal next step.`,
    "Output your new short function in backticks using the format below:",
    "```python",
    "def strategy(board):",
    `    return "${up}" # Example`,
    "```",
    "All helper functions should be inside def strategy. Only output the short function `strategy`.",
  ].join("\n");
}
