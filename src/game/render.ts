/**
 * Drawing a board: the seed's coloured box-drawing board for terminals (256-colour
 * foregrounds from cool to warm by log2(tile) / log2(target), dots for empty cells), the same
 * without colours as plain text, and SVG with the same colours for web pages.
 */

/** The seed's colour scale, as xterm 256-colour indices. */
export const GRADIENT = [
  33, 39, 45, 51, 50, 49, 48, 47, 46, 82, 118, 154, 190, 226, 220, 214, 208, 202, 196,
] as const;
const EMPTY_COLOUR = 239;
const RESET = "\x1b[0m";

export interface RenderOptions {
  /** ANSI colours (default true). */
  colors?: boolean;
  /** Box-drawing frame around and between cells (default true). */
  border?: boolean;
  /** "." for an empty cell instead of "0" (default true). */
  dotForZero?: boolean;
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : r;
}

/** The xterm 256-colour index of a tile: its place between 1 and the target on a log scale. */
export function tileColour(value: number, target: number): number {
  if (value === 0) return EMPTY_COLOUR;
  const ratio = value > 0 ? Math.log2(value) / Math.log2(Math.max(2, target)) : 0;
  const r = Math.max(0, Math.min(1, ratio));
  return GRADIENT[roundHalfEven(r * (GRADIENT.length - 1))]!;
}

/** The board as the seed's `pretty()` draws it, byte for byte. */
export function renderBoard(board: number[][], target: number, options: RenderOptions = {}) {
  const { colors = true, border = true, dotForZero = true } = options;
  const n = board.length;
  const max = Math.max(0, ...board.flat());
  const width = Math.max(3, String(max).length);

  const cell = (v: number) => {
    const text = (v === 0 && dotForZero ? "." : String(v)).padStart(width);
    return colors ? `\x1b[38;5;${tileColour(v, target)}m${text}${RESET}` : text;
  };
  const rule = (left: string, mid: string, right: string) =>
    left + Array.from({ length: n }, () => "─".repeat(width)).join(mid) + right;

  const lines = border ? [rule("┌", "┬", "┐")] : [];
  board.forEach((row, r) => {
    const content = row.map(cell).join("│");
    lines.push(border ? `│${content}│` : content);
    if (border) {
      const last = r === n - 1;
      lines.push(rule(last ? "└" : "├", last ? "┴" : "┼", last ? "┘" : "┤"));
    }
  });
  return lines.join("\n");
}

/** The board as plain text: the same frame, no colours. */
export function renderText(board: number[][]): string {
  return renderBoard(board, 2048, { colors: false });
}

/** The RGB hex colour of an xterm 256-colour index. */
export function xtermHex(index: number): string {
  let rgb: [number, number, number];
  if (index >= 232) {
    const g = 8 + 10 * (index - 232);
    rgb = [g, g, g];
  } else {
    const levels = [0, 95, 135, 175, 215, 255];
    const i = index - 16;
    rgb = [levels[Math.floor(i / 36)]!, levels[Math.floor(i / 6) % 6]!, levels[i % 6]!];
  }
  return "#" + rgb.map((c) => c.toString(16).padStart(2, "0")).join("");
}

export interface SvgOptions {
  /** Side of one cell in pixels (default 64). */
  cellSize?: number;
}

/** The board as a standalone SVG: tiles coloured as in the terminal, empty cells grey. */
export function renderSvg(board: number[][], target: number, options: SvgOptions = {}): string {
  const cell = options.cellSize ?? 64;
  const gap = Math.max(2, Math.round(cell / 10));
  const n = board.length;
  const side = n * cell + (n + 1) * gap;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${side}" height="${side}" viewBox="0 0 ${side} ${side}" role="img">`,
    `<rect width="${side}" height="${side}" rx="${gap * 2}" fill="#3a3a3a"/>`,
  ];
  board.forEach((row, r) => {
    row.forEach((v, c) => {
      const x = gap + c * (cell + gap);
      const y = gap + r * (cell + gap);
      const fill = v === 0 ? "#5a5a5a" : xtermHex(tileColour(v, target));
      parts.push(
        `<rect x="${x}" y="${y}" width="${cell}" height="${cell}" rx="${gap}" fill="${fill}"/>`,
      );
      if (v !== 0) {
        const size = Math.round(cell * Math.min(0.5, 1.4 / String(v).length));
        parts.push(
          `<text x="${x + cell / 2}" y="${y + cell / 2}" font-family="sans-serif" font-weight="bold" font-size="${size}" fill="#1c1c1c" text-anchor="middle" dominant-baseline="central">${v}</text>`,
        );
      }
    });
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/** A position for the terminal: the board, then its score and state on one line. */
export function renderPosition(
  position: { board: number[][]; score: number; state: string },
  target: number,
  colors: boolean,
): string {
  return `${renderBoard(position.board, target, { colors })}\nscore ${position.score} · ${position.state}`;
}
