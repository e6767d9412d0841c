import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { FAMILIES, generateCorpus, generateProgram, type CorpusRecord } from "./corpus.ts";
import { KEY_PRESETS, type Direction } from "./python.ts";

const keys = KEY_PRESETS.bepo;

/** Parses each program with CPython's ast and, when boards are given, runs it on them. */
const INSPECT = `
import ast, json, sys
out = []
for item in json.load(sys.stdin):
    tree = ast.parse(item["code"])
    fn = tree.body[0]
    result = {
        "top": [type(node).__name__ for node in tree.body],
        "name": fn.name,
        "args": [a.arg for a in fn.args.args],
        "imports": sorted({a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}),
        "names": sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
                        | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}),
        "loops": sum(isinstance(n, ast.While) for n in ast.walk(tree)),
    }
    if item["boards"]:
        scope = {}
        exec(compile(tree, "<strategy>", "exec"), scope)
        result["moves"] = []
        for board in item["boards"]:
            try:
                result["moves"].append({"key": scope["strategy"]([list(r) for r in board])})
            except Exception as e:
                result["moves"].append({"error": type(e).__name__})
    out.append(result)
print(json.dumps(out))
`;

interface Inspection {
  top: string[];
  name: string;
  args: string[];
  imports: string[];
  names: string[];
  loops: number;
  moves?: ({ key: unknown } | { error: string })[];
}

function code(record: CorpusRecord): string {
  const match = /^```python\n([\s\S]*)```$/.exec(record.text);
  if (!match) throw new Error(`not a fenced python block: ${record.text.slice(0, 40)}`);
  return match[1]!;
}

function inspect(items: { code: string; boards: number[][][] }[]): Inspection[] {
  const run = spawnSync("python3", ["-c", INSPECT], {
    input: JSON.stringify(items),
    encoding: "utf8",
  });
  if (run.status !== 0) throw new Error(run.stderr);
  return JSON.parse(run.stdout) as Inspection[];
}

// Only "right" and "down" change this board: the 2 already sits in the top-left corner.
const CORNER_BOARD = [
  [2, 0, 0, 0],
  [0, 0, 0, 0],
  [0, 0, 0, 0],
  [0, 0, 0, 0],
];
const FULL_BOARD = [
  [2, 4, 8, 16],
  [4, 8, 16, 32],
  [8, 16, 32, 64],
  [16, 32, 64, 128],
];
const CHANGING: Direction[] = ["right", "down"];

describe("corpus", () => {
  it("is deterministic for a seed, and a longer corpus starts with a shorter one", () => {
    const a = generateCorpus({ n: 40, seed: 7, keys });
    expect(generateCorpus({ n: 40, seed: 7, keys })).toEqual(a);
    expect(generateCorpus({ n: 60, seed: 7, keys }).slice(0, 40)).toEqual(a);
    expect(generateCorpus({ n: 40, seed: 8, keys })).not.toEqual(a);
  });

  it("draws every family and many distinct programs", () => {
    const records = generateCorpus({ n: 200, seed: 1, keys });
    expect(new Set(records.map((r) => r.family))).toEqual(new Set(FAMILIES));
    expect(new Set(records.map((r) => r.text)).size).toBeGreaterThan(150);
  });

  it("writes one strategy(board) per answer, standard library only, no forbidden names", () => {
    const records = generateCorpus({ n: 120, seed: 3, keys });
    const found = inspect(records.map((r) => ({ code: code(r), boards: [] })));
    for (const [i, result] of found.entries()) {
      expect(result.top, records[i]!.text).toEqual(["FunctionDef"]);
      expect(result.name).toBe("strategy");
      expect(result.args).toEqual(["board"]);
      for (const name of result.imports) expect(["math", "random"]).toContain(name);
      for (const name of result.names) {
        expect(name).not.toMatch(
          /^__|^(eval|exec|compile|open|getattr|setattr|globals|vars|locals)$/,
        );
      }
    }
  });

  it("each family plays as designed", () => {
    const records = FAMILIES.flatMap((family) =>
      Array.from({ length: 25 }, (_, i) => generateProgram(family, 100 + i, keys)),
    );
    const runnable = (r: CorpusRecord) => r.params.kind !== "loop";
    const found = inspect(
      records.map((r) => ({
        code: code(r),
        boards: runnable(r) ? [CORNER_BOARD, FULL_BOARD] : [],
      })),
    );
    for (const [i, record] of records.entries()) {
      const { moves, loops } = found[i]!;
      const [corner, full] = moves ?? [];
      const params = record.params;
      const why = record.text;
      switch (record.family) {
        case "order": {
          const order = params.order as Direction[];
          if (params.check) {
            const first = order.find((d) => CHANGING.includes(d)) ?? order[0]!;
            expect(corner, why).toEqual({ key: keys[first] });
            expect(full, why).toEqual({ key: keys[order[0]!] });
          } else {
            expect(corner, why).toEqual({ key: keys[order[1 % order.length]!] });
          }
          break;
        }
        case "greedy":
        case "search":
          expect(
            CHANGING.map((d) => ({ key: keys[d] })),
            why,
          ).toContainEqual(corner);
          break;
        case "weak": {
          const direction = params.direction as Direction;
          const expected = {
            constant: { key: keys[direction] },
            invalid: { key: direction },
            crash: { error: "IndexError" },
          }[params.kind as string];
          if (expected) expect(corner, why).toEqual(expected);
          if (params.kind === "random")
            expect(Object.values(keys)).toContain((corner as { key: string }).key);
          if (params.kind === "loop") expect(loops, why).toBe(1);
          break;
        }
      }
    }
  });
});
