"""Plain-Python reference of the seed's 2048 rules, used by the tests and the benchmark.

It follows the seed's `GameBoard` (gpt_2048_rl.py) rule for rule: lists of lists, rows
compressed and merged toward the left (other directions by reversing and transposing),
`random.Random(seed)`, the new tile from `choice(empty cells in row-major order)` then
`random() < p4`, success when the target is on the board, and a key that is not a move
(after `strip().lower()`) fails the game. The keys are the preset's instead of only WASD.

Reads one JSON request on stdin and writes one JSON answer on stdout:
  {"op": "play", "games": [{size, target, p4, seed, preset: {up,left,down,right}, keys: [..]}]}
      -> [[{board, score, state}, ...], ...]   start position, then one per key
  {"op": "rng", "seeds": [..], "count": n}
      -> [{random: [..], bits: [[k, v], ..], below: [[n, v], ..]}, ...]
  {"op": "render", "cases": [{board, target, colors, border, dot_for_zero}]} -> [str, ...]
  {"op": "bench", "size", "target", "p4", "preset", "keys": str, "moves": n}
      -> {seconds, games, score}   plays the keys in a cycle, a new game (next seed) after
         each end; score is the sum over the games, to check the other side did the same work
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from typing import Callable

Board = list[list[int]]


def merge_row_left(row: list[int]) -> tuple[list[int], int]:
    """Slides one row to the left, merging each equal pair once; returns (row, gain)."""
    tiles = [v for v in row if v]
    out: list[int] = []
    gain = 0
    i = 0
    while i < len(tiles):
        if i + 1 < len(tiles) and tiles[i] == tiles[i + 1]:
            out.append(tiles[i] * 2)
            gain += tiles[i] * 2
            i += 2
        else:
            out.append(tiles[i])
            i += 1
    return out + [0] * (len(row) - len(out)), gain


def move_left(board: Board) -> tuple[Board, int]:
    rows = [merge_row_left(row) for row in board]
    return [r for r, _ in rows], sum(g for _, g in rows)


def move_right(board: Board) -> tuple[Board, int]:
    moved, gain = move_left([row[::-1] for row in board])
    return [row[::-1] for row in moved], gain


def transpose(board: Board) -> Board:
    return [list(col) for col in zip(*board)]


def move_up(board: Board) -> tuple[Board, int]:
    moved, gain = move_left(transpose(board))
    return transpose(moved), gain


def move_down(board: Board) -> tuple[Board, int]:
    moved, gain = move_right(transpose(board))
    return transpose(moved), gain


def can_move(board: Board) -> bool:
    n = len(board)
    for r in range(n):
        for c in range(n):
            v = board[r][c]
            if v == 0:
                return True
            if c + 1 < n and board[r][c + 1] == v:
                return True
            if r + 1 < n and board[r + 1][c] == v:
                return True
    return False


class Game:
    def __init__(self, size: int, target: int, p4: float, seed: int, preset: dict[str, str]):
        self.size = size
        self.target = target
        self.p4 = p4
        self.rng = random.Random(seed)
        self.board: Board = [[0] * size for _ in range(size)]
        self.score = 0
        self.state = "ongoing"
        movers: dict[str, Callable[[Board], tuple[Board, int]]] = {
            "up": move_up,
            "left": move_left,
            "down": move_down,
            "right": move_right,
        }
        self.moves = {preset[d]: f for d, f in movers.items()}
        self.add_tile()
        self.add_tile()
        self.update_state()

    def add_tile(self) -> None:
        empty = [(r, c) for r in range(self.size) for c in range(self.size) if not self.board[r][c]]
        if empty:
            r, c = self.rng.choice(empty)
            self.board[r][c] = 4 if self.rng.random() < self.p4 else 2

    def update_state(self) -> None:
        if any(self.target in row for row in self.board):
            self.state = "success"
        elif not can_move(self.board):
            self.state = "failed"
        else:
            self.state = "ongoing"

    def act(self, key: str) -> None:
        if self.state != "ongoing":
            return
        mover = self.moves.get(key.strip().lower())
        if mover is None:
            self.state = "failed"
            return
        board, gain = mover(self.board)
        if board != self.board:
            self.board = board
            self.score += gain
            self.add_tile()
        self.update_state()

    def snapshot(self) -> dict[str, object]:
        return {"board": [row[:] for row in self.board], "score": self.score, "state": self.state}


# The seed's colour scale: 256-colour foregrounds, cool to warm, by log2(tile) / log2(target).
GRADIENT = [33, 39, 45, 51, 50, 49, 48, 47, 46, 82, 118, 154, 190, 226, 220, 214, 208, 202, 196]
EMPTY_COLOUR = 239
RESET = "\x1b[0m"


def pretty(board: Board, target: int, colors: bool, border: bool, dot_for_zero: bool) -> str:
    n = len(board)
    width = max(3, len(str(max((max(row) for row in board), default=0))))

    def colour(v: int) -> str:
        if not colors:
            return ""
        if v == 0:
            return f"\x1b[38;5;{EMPTY_COLOUR}m"
        ratio = max(0.0, min(1.0, math.log2(v) / math.log2(max(2, target))))
        return f"\x1b[38;5;{GRADIENT[int(round(ratio * (len(GRADIENT) - 1)))]}m"

    def cell(v: int) -> str:
        text = "." if v == 0 and dot_for_zero else str(v)
        return colour(v) + text.rjust(width) + (RESET if colors else "")

    def rule(left: str, mid: str, right: str) -> str:
        return left + mid.join(["─" * width] * n) + right

    lines = [rule("┌", "┬", "┐")] if border else []
    for r, row in enumerate(board):
        content = "│".join(cell(v) for v in row)
        lines.append(f"│{content}│" if border else content)
        if border:
            last = r == n - 1
            lines.append(rule("└" if last else "├", "┴" if last else "┼", "┘" if last else "┤"))
    return "\n".join(lines)


def play(games: list[dict]) -> list[list[dict[str, object]]]:
    out = []
    for g in games:
        game = Game(g["size"], g["target"], g["p4"], int(g["seed"]), g["preset"])
        trace = [game.snapshot()]
        for key in g["keys"]:
            game.act(key)
            trace.append(game.snapshot())
        out.append(trace)
    return out


def rng(seeds: list, count: int) -> list[dict[str, list]]:
    out = []
    for seed in seeds:
        r = random.Random(int(seed))
        floats = [r.random() for _ in range(count)]
        bits = [[k, r.getrandbits(k)] for k in range(1, 33) for _ in range(2)]
        below = [[n, r.choice(range(n))] for n in [1, 2, 3, 5, 7, 36, 100, 255, 256, 1000] * 3]
        out.append({"random": floats, "bits": bits, "below": below})
    return out


def bench(req: dict) -> dict[str, float]:
    keys: str = req["keys"]
    seed = 0
    game = Game(req["size"], req["target"], req["p4"], seed, req["preset"])
    finished_score = 0
    start = time.perf_counter()
    for i in range(req["moves"]):
        if game.state != "ongoing":
            finished_score += game.score
            seed += 1
            game = Game(req["size"], req["target"], req["p4"], seed, req["preset"])
        game.act(keys[i % len(keys)])
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "games": seed + 1, "score": finished_score + game.score}


def main() -> None:
    req = json.load(sys.stdin)
    if req["op"] == "play":
        answer: object = play(req["games"])
    elif req["op"] == "rng":
        answer = rng(req["seeds"], req["count"])
    elif req["op"] == "render":
        answer = [
            pretty(c["board"], c["target"], c["colors"], c["border"], c["dot_for_zero"])
            for c in req["cases"]
        ]
    elif req["op"] == "bench":
        answer = bench(req)
    else:
        raise SystemExit(f"unknown op {req['op']!r}")
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
