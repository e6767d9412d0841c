import { describe, expect, it } from "vitest";
import { Game } from "./game.ts";
import { renderBoard, renderSvg, renderText, tileColour, xtermHex } from "./render.ts";
import { runReference } from "./reference/runReference.ts";

interface RenderCase {
  board: number[][];
  target: number;
  colors: boolean;
  border: boolean;
  dot_for_zero: boolean;
}

function boards(): { board: number[][]; target: number }[] {
  const out: { board: number[][]; target: number }[] = [
    {
      board: [
        [0, 0],
        [0, 0],
      ],
      target: 2048,
    },
    // target 16: log2 ratios land on .5 for 2 and 8, where Python rounds to even
    {
      board: [
        [2, 4],
        [8, 16],
      ],
      target: 16,
    },
    {
      board: [
        [2, 4, 8, 16],
        [32, 64, 128, 256],
        [512, 1024, 2048, 0],
        [0, 4096, 0, 2],
      ],
      target: 2048,
    },
    {
      board: [
        [1024, 0, 0],
        [0, 65536, 0],
        [0, 0, 2],
      ],
      target: 8,
    },
  ];
  for (const [size, target, seed] of [
    [6, 2048, 1],
    [4, 64, 2],
    [9, 512, 3],
  ] as const) {
    const game = new Game({ size, target, seed });
    for (let i = 0; i < 300 && game.state === "ongoing"; i++)
      game.move(["up", "left", "down", "right"][i % 4] as "up");
    out.push({ board: game.board, target });
  }
  return out;
}

describe("renderBoard", () => {
  it("draws exactly what the seed's pretty() draws, with and without colours", () => {
    const cases: RenderCase[] = boards().flatMap(({ board, target }) =>
      [true, false].flatMap((colors) =>
        [true, false].map((border) => ({ board, target, colors, border, dot_for_zero: border })),
      ),
    );
    const expected = runReference<string[]>({ op: "render", cases });
    cases.forEach((c, i) => {
      const got = renderBoard(c.board, c.target, {
        colors: c.colors,
        border: c.border,
        dotForZero: c.dot_for_zero,
      });
      expect(got, JSON.stringify(c)).toBe(expected[i]);
    });
  });

  it("draws plain text without escape codes", () => {
    const text = renderText([
      [0, 2],
      [4, 2048],
    ]);
    expect(text).not.toContain("\x1b");
    expect(text.split("\n")).toEqual([
      "┌────┬────┐",
      "│   .│   2│",
      "├────┼────┤",
      "│   4│2048│",
      "└────┴────┘",
    ]);
  });

  it("colours from cool to warm up to the target", () => {
    expect(tileColour(0, 2048)).toBe(239);
    expect(tileColour(2, 2048)).toBe(45); // round(1/11 * 18) = 2
    expect(tileColour(2048, 2048)).toBe(196);
    expect(tileColour(4096, 2048)).toBe(196);
  });
});

describe("renderSvg", () => {
  it("draws one rect per cell and a label per tile, in the terminal's colours", () => {
    const svg = renderSvg(
      [
        [0, 2],
        [4, 2048],
      ],
      2048,
    );
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.match(/<rect /g)).toHaveLength(5);
    expect(svg.match(/<text /g)).toHaveLength(3);
    expect(svg).toContain(`fill="${xtermHex(196)}"`);
    expect(svg).toContain(">2048</text>");
  });

  it("converts xterm colour indices", () => {
    expect(xtermHex(196)).toBe("#ff0000");
    expect(xtermHex(33)).toBe("#0087ff");
    expect(xtermHex(239)).toBe("#4e4e4e");
  });
});
