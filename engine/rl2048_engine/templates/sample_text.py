"""A small built-in text sample to train the merges of generated checkpoints' tokenizers.

It mixes what rl2048's models read and write (English instructions, Python strategies for 2048,
harmony-formatted turns) with a little French and other Unicode, so common words and code get
their own tokens. A later corpus command trains on real text; this is only a stand-in.
"""

SAMPLE_TEXTS = [
    """Create a new short 2048 strategy using only native Python code.
You are given a list of list of numbers for the current board state.
Output one action for "W", "A", "S", "D" on what is the optimal next step.
Output your new short function in backticks using the format below:
```python
def strategy(board):
    return "W" # Example
```
All helper functions should be inside def strategy. Only output the short function `strategy`.""",
    '''def strategy(board):
    """Pick the move that keeps the largest tile in a corner and merges the most tiles."""
    size = len(board)

    def slide(row):
        tiles = [value for value in row if value != 0]
        merged = []
        score = 0
        i = 0
        while i < len(tiles):
            if i + 1 < len(tiles) and tiles[i] == tiles[i + 1]:
                merged.append(tiles[i] * 2)
                score += tiles[i] * 2
                i += 2
            else:
                merged.append(tiles[i])
                i += 1
        return merged + [0] * (len(row) - len(merged)), score

    def move(grid, direction):
        if direction in ("A", "D"):
            rows = [list(row) for row in grid]
        else:
            rows = [list(column) for column in zip(*grid)]
        total = 0
        result = []
        for row in rows:
            line = row if direction in ("A", "W") else row[::-1]
            new_line, gained = slide(line)
            total += gained
            result.append(new_line if direction in ("A", "W") else new_line[::-1])
        if direction in ("W", "S"):
            result = [list(row) for row in zip(*result)]
        return result, total

    best_action, best_value = "A", -1
    for action in ("W", "A", "S", "D"):
        new_board, gained = move(board, action)
        if new_board == board:
            continue
        empty = sum(row.count(0) for row in new_board)
        corner = new_board[size - 1][0]
        value = gained + 10 * empty + 2 * corner
        if value > best_value:
            best_action, best_value = action, value
    return best_action
''',
    """The game of 2048 is played on a square grid of numbered tiles. Each turn the player
slides every tile up, down, left or right; two tiles with the same number merge into one
tile worth their sum. After each move a new tile appears in a random empty cell: a 2 nine
times in ten, otherwise a 4. The game is won when a tile reaches the target, 2048 by default,
and lost when the board is full and no move can merge two tiles. A good strategy keeps the
largest tile in a corner, builds a chain of decreasing tiles along one edge, and avoids moves
that pull the largest tile away from its corner. Reinforcement learning rewards programs that
reach higher tiles, so the model learns to write better strategies over many training steps.""",
    """import math
import random
from collections import Counter, defaultdict


class GameBoard:
    def __init__(self, size: int = 6, target: int = 2048, probability_fours: float = 0.10, seed=None):
        self.size = size
        self.target = target
        self.probability_fours = probability_fours
        self.random = random.Random(seed)
        self.board = [[0 for _ in range(size)] for _ in range(size)]
        self.score = 0
        self.add_random_tile()
        self.add_random_tile()

    def add_random_tile(self) -> bool:
        empty = [(r, c) for r in range(self.size) for c in range(self.size) if self.board[r][c] == 0]
        if not empty:
            return False
        row, column = self.random.choice(empty)
        self.board[row][column] = 4 if self.random.random() < self.probability_fours else 2
        return True

    def state(self) -> str:
        if any(value >= self.target for row in self.board for value in row):
            return "success"
        return "ongoing" if self.can_move() else "failed"

    def __repr__(self) -> str:
        return f"GameBoard(size={self.size}, score={self.score}, state={self.state()!r})"
""",
    """<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.
Knowledge cutoff: 2024-06

Reasoning: low

# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>
<|start|>user<|message|>Write a strategy for 2048.<|end|><|start|>assistant<|channel|>analysis<|message|>
We need a short function that returns one of the keys. Let us check which moves change the
board and prefer the one that keeps the biggest tile in the corner.<|end|>
<|start|>assistant<|channel|>final<|message|>Here is a simple strategy that works well.<|return|>""",
    """Le jeu 2048 se joue sur une grille carrée. À chaque tour, le joueur fait glisser toutes les
tuiles vers le haut, le bas, la gauche ou la droite ; deux tuiles de même valeur fusionnent.
Sur un clavier bépo, les touches é, a, u et i servent à jouer : é monte, a va à gauche,
u descend et i va à droite. Une stratégie efficace garde la plus grande tuile dans un coin.
Ça marche très bien, même pour les débutants ! Voilà, c'est déjà ça.
Größe, Straße, naïve café, résumé, coöperate, São Paulo, Kraków, İstanbul, ĳ, ﬁ.
日本語のテキスト、中文文本、한국어 텍스트, русский текст, ελληνικά, עברית, العربية, हिन्दी.
Emoji: 🎮 🧩 🔢 ✅ ❌ 🚀 — “quotes”, ‘single’, «guillemets», … and ellipsis; math: x² + y² = z², ∑, √, ≤, ≥, ≠, ∞.""",
    """Numbers and symbols: 0 1 2 4 8 16 32 64 128 256 512 1024 2048 4096 8192 16384.
3.14159 2.71828 1e-5 0x1F 0b1010 100% $42.00 #hash @user a+b=c (x) [y] {z} <tag> a->b a=>b
if x == y and not z: pass  # comment
for i in range(10): print(i, end=", ")
while True: break
try:
    value = int(text)
except ValueError as error:
    raise SystemExit(f"bad value: {error}")
lambda x: x ** 2; [n * n for n in numbers if n % 2 == 0]; {key: value for key, value in pairs}
    \tindented with a tab\r\n windows line end\n\n\nthree new lines""",
]
