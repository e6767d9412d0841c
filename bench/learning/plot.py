"""Draws bench/learning/<name>/curve.png from the curve.json beside it (matplotlib).

    .venv/bin/python bench/learning/plot.py bench/learning/cpu
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def moving_average(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1) : i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def main(folder: Path) -> None:
    curve = json.loads((folder / "curve.json").read_text())
    steps = [row["step"] for row in curve["rows"]]
    graded = [k for k in curve["rows"][0] if k.startswith("rewards/") and k.split("/")[1] not in ("function_works", "no_cheating")]
    panels = [("reward", "reward (weighted sum)")]
    panels += [(k, k) for k in graded]
    panels += [("rewards/function_works/mean", "rewards/function_works/mean"), ("frac_reward_zero_std", "frac_reward_zero_std")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4))
    for ax, (key, title) in zip(axes, panels):
        values = [row.get(key, float("nan")) for row in curve["rows"]]
        ax.plot(steps, values, color="#bbbbbb", linewidth=1, label="per step")
        ax.plot(steps, moving_average(values, 10), color="#1f77b4", linewidth=2, label="10-step mean")
        ax.set_title(title)
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"rl2048 tiny policy, {curve['device']}")
    fig.tight_layout()
    fig.savefig(folder / "curve.png", dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
