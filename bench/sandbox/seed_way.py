"""The seed's way of scoring one strategy on one game, for the benchmark: a fresh Python
process per game, the game in plain Python (the seed's rules, src/game/reference), the
strategy exec'd in process and called with the game's board until the game ends or the
wall-time limit passes.

Usage: python3 seed_way.py STRATEGY_FILE SIZE TARGET P4 SEED  ->  prints "outcome steps score"
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "game", "reference"))
from game_reference import Game  # noqa: E402

BEPO = {"up": "é", "left": "a", "down": "u", "right": "i"}


def main() -> None:
    path, size, target, p4, seed = sys.argv[1:6]
    scope: dict[str, object] = {}
    with open(path, encoding="utf8") as f:
        exec(f.read(), scope)
    strategy = scope["strategy"]
    game = Game(int(size), int(target), float(p4), int(seed), BEPO)
    deadline = time.time() + 5
    steps = 0
    while game.state == "ongoing" and time.time() < deadline:
        game.act(strategy([row[:] for row in game.board]))  # type: ignore[operator]
        steps += 1
    print(game.state, steps, game.score)


main()
