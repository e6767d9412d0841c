/**
 * One game of 2048 with the seed's rules and the seed's randomness.
 *
 * Start: two random tiles. A move that changes the board adds the merged values to the score,
 * then one new tile: `choice(empty cells, row-major)`, a 4 when `random() < p4`, else a 2.
 * After every action the state is `success` when the target tile is on the board, else
 * `failed` when no move can change it, else `ongoing`. A key outside the preset fails the
 * game; actions after the end change nothing.
 *
 * The board is kept as a flat Uint8Array of exponents; `board` hands out a fresh copy.
 */
import { DIRECTIONS, KEY_PRESETS, normalizeKey, type Direction, type KeyPreset } from "./keys.ts";
import { canMove, POW2, slide, wouldChange } from "./moves.ts";
import { gameOptionsSchema, type GameOptions } from "./options.ts";
import { PythonRandom } from "./pythonRandom.ts";

export type GameState = "ongoing" | "success" | "failed";

export class Game {
  readonly size: number;
  readonly target: number;
  readonly p4: number;
  readonly seed: number | bigint;
  readonly keys: KeyPreset;

  private readonly cells: Uint8Array;
  private readonly empties: Int32Array;
  private readonly rng: PythonRandom;
  private readonly targetExponent: number;
  private readonly keyMap: Map<string, Direction>;
  private _score = 0;
  private _state: GameState = "ongoing";
  private _moves = 0;

  constructor(options: Partial<GameOptions> = {}) {
    const o = gameOptionsSchema.parse(options);
    this.size = o.size;
    this.target = o.target;
    this.p4 = o.p4;
    this.seed = o.seed;
    this.keys = o.keys;
    this.cells = new Uint8Array(o.size * o.size);
    this.empties = new Int32Array(o.size * o.size);
    this.rng = new PythonRandom(o.seed);
    this.targetExponent = Math.log2(o.target);
    const preset = KEY_PRESETS[o.keys];
    this.keyMap = new Map(DIRECTIONS.map((d) => [preset[d] as string, d]));
    this.addRandomTile();
    this.addRandomTile();
    this.updateState();
  }

  /** The board as rows of tile values (0 = empty); a fresh copy every call. */
  get board(): number[][] {
    const rows: number[][] = [];
    for (let r = 0; r < this.size; r++) {
      const row = new Array<number>(this.size);
      for (let c = 0; c < this.size; c++) {
        const e = this.cells[r * this.size + c]!;
        row[c] = e === 0 ? 0 : POW2[e]!;
      }
      rows.push(row);
    }
    return rows;
  }

  /** The board as a flat row-major copy of exponents (0 = empty, e = tile 2^e). */
  get exponents(): Uint8Array {
    return this.cells.slice();
  }

  get score(): number {
    return this._score;
  }

  get state(): GameState {
    return this._state;
  }

  /** Actions the game took: every `act`/`move` while it was ongoing, moves that changed nothing and a bad key included. */
  get moves(): number {
    return this._moves;
  }

  /** The largest tile on the board. */
  get maxTile(): number {
    let max = 0;
    for (const e of this.cells) if (e > max) max = e;
    return max === 0 ? 0 : POW2[max]!;
  }

  /** The direction a key means under this game's preset (trimmed, case-insensitive), if any. */
  direction(key: string): Direction | undefined {
    return this.keyMap.get(key) ?? this.keyMap.get(normalizeKey(key));
  }

  /** Plays one key of the preset; any other key (or a non-string) fails the game. */
  act(key: string): void {
    if (this._state !== "ongoing") return;
    const direction = typeof key === "string" ? this.direction(key) : undefined;
    if (direction === undefined) {
      this._moves++;
      this._state = "failed";
      return;
    }
    this.move(direction);
  }

  /** Plays one direction, whatever the preset. */
  move(direction: Direction): void {
    if (this._state !== "ongoing") return;
    this._moves++;
    const gain = slide(this.cells, this.size, direction);
    if (gain >= 0) {
      this._score += gain;
      this.addRandomTile();
    }
    this.updateState();
  }

  /** Whether moving in this direction would change the board. */
  wouldChange(direction: Direction): boolean {
    return wouldChange(this.cells, this.size, direction);
  }

  /** The directions that would change the board, in the order up, left, down, right. */
  legalDirections(): Direction[] {
    return DIRECTIONS.filter((d) => wouldChange(this.cells, this.size, d));
  }

  private addRandomTile(): void {
    let count = 0;
    for (let p = 0; p < this.cells.length; p++) if (this.cells[p] === 0) this.empties[count++] = p;
    if (count === 0) return;
    const cell = this.empties[this.rng.randbelow(count)]!;
    this.cells[cell] = this.rng.random() < this.p4 ? 2 : 1;
  }

  private updateState(): void {
    if (this.cells.includes(this.targetExponent)) this._state = "success";
    else if (!canMove(this.cells, this.size)) this._state = "failed";
    else this._state = "ongoing";
  }
}
