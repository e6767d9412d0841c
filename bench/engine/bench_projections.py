"""The attention projections of a decode step: cuBLAS (`F.linear`) against our kernel (`decode_linear.py`).

    PYTHONPATH=engine:bench/engine python3 bench/engine/bench_projections.py [--rows 8]

At gpt-oss-20b's q/k/v (5 120 x 2 880, stacked) and o (2 880 x 4 096) in bf16 with their biases,
`--rows` rows: each way is timed by replays of a CUDA graph (`timing.graph_us`) over 12 copies of
the weight in turn (354 MB of q/k/v, more than the 50 MB L2, as a decode step reads 24 layers'),
for each of the kernel's candidate tiles below; each result is checked against `F.linear`.
Prints one JSON object: microseconds a call and the weights' TB/s per shape, and their sum, for
cuBLAS, our current tiles and the tiles fastest over both shapes; and the fastest few.
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch
import torch.nn.functional as F

from rl2048_engine.fast import decode_linear
from timing import graph_us, rel_err

SHAPES = {"qkv": (5120, 2880), "o": (2880, 4096)}
COPIES = 12
CANDIDATES = [
    dict(BLOCK_N=n, BLOCK_K=k, num_warps=w, num_stages=s)
    for n, k, w, s in itertools.product([16, 8, 32], [256, 128], [4], [4])
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=8)
    args = parser.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    current = dict(decode_linear.TILES)
    problems = {}
    for name, (n, k) in SHAPES.items():
        x = torch.randn(args.rows, k, device="cuda", dtype=torch.bfloat16, generator=gen)
        weights = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16, generator=gen) / k**0.5 for _ in range(COPIES)]
        biases = [torch.randn(n, device="cuda", dtype=torch.bfloat16, generator=gen) for _ in range(COPIES)]
        problems[name] = (x, weights, biases, F.linear(x.float(), weights[0].float(), biases[0].float()))

    def timed(name: str, fn) -> float:  # type: ignore[no-untyped-def]
        x, weights, biases, _ = problems[name]
        return graph_us(lambda: [fn(x, w, b) for w, b in zip(weights, biases)]) / COPIES

    def ours(name: str) -> float:
        x, weights, biases, want = problems[name]
        try:
            err = rel_err(decode_linear.linear_rows(x, weights[0], biases[0]).float(), want)
            return timed(name, decode_linear.linear_rows) if err < 1e-2 else float("inf")
        except Exception:  # noqa: BLE001 - a setting that does not compile is skipped
            return float("inf")

    cublas = {name: timed(name, F.linear) for name in SHAPES}
    timed_tiles = []
    for tiles in [current, *CANDIDATES]:
        decode_linear.TILES.clear()
        decode_linear.TILES.update(tiles)
        timed_tiles.append(({name: ours(name) for name in SHAPES}, tiles))
    decode_linear.TILES.clear()
    decode_linear.TILES.update(current)
    best = min(timed_tiles[1:], key=lambda t: sum(t[0].values()))
    tb_s = {name: (lambda us, n=n, k=k: round(n * k * 2 / (us * 1e-6) / 1e12, 2)) for name, (n, k) in SHAPES.items()}
    per_shape = lambda times: {name: dict(us=round(us, 2), tb_s=tb_s[name](us)) for name, us in times.items()}  # noqa: E731
    report = {
        "device": torch.cuda.get_device_name(), "rows": args.rows,
        "cublas": per_shape(cublas), "cublas_us": round(sum(cublas.values()), 2),
        "ours": per_shape(timed_tiles[0][0]), "ours_us": round(sum(timed_tiles[0][0].values()), 2), "tiles": current,
        "best": best[1], "best_shapes": per_shape(best[0]), "best_us": round(sum(best[0].values()), 2),
        "fastest": [
            dict(us=round(sum(t.values()), 2), **tiles) for t, tiles in sorted(timed_tiles[1:], key=lambda t: sum(t[0].values()))[:6]
        ],
    }  # fmt: skip
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
