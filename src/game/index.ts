/** The 2048 game: rules, CPython-compatible randomness, key presets, options and rendering. */
export { Game, type GameState } from "./game.ts";
export {
  DIRECTIONS,
  KEY_PRESETS,
  KEY_PRESET_NAMES,
  keyDirection,
  normalizeKey,
  type Direction,
  type KeyPreset,
} from "./keys.ts";
export { gameOptionsSchema, MAX_TARGET, type GameOptions } from "./options.ts";
export { PythonRandom } from "./pythonRandom.ts";
export { canMove, slide, wouldChange } from "./moves.ts";
export {
  renderBoard,
  renderPosition,
  renderSvg,
  renderText,
  tileColour,
  type RenderOptions,
} from "./render.ts";
