"""The many-row MXFP4 expert kernels (`mx`, `mx_t`: prefill, scoring, training) compiled for sm_90
on this machine's CPU, no GPU needed: registers, spilled bytes, and the spill stores and loads
inside the loops that hold the tensor-core instructions (HGMMA), for each tile setting of
`tune_kernels.py`'s many-row grids (or `--current`: only `moe_kernels.TILES`' own).

    PYTHONPATH=engine:engine/tests python bench/engine/kernel_spills.py [--current] > spills.jsonl

Needs Triton's CUDA backend (its `ptxas` and `cuobjdump`); compile with the Triton the GPU runs
(the device had 3.6.0 on 2026-12-08: `pip install --target DIR triton==3.6.0`, DIR first on
PYTHONPATH). A reading of the code, not a timing: `tune_kernels.py` on a GPU decides.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
from typing import Any

import triton
from test_fast_kernels import compile_for_hopper  # engine/tests: Triton's compiler, target sm_90
from tune_kernels import MANY_ROWS

from rl2048_engine.fast import moe_kernels

TOOLS = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
SHAPE = {"K": 2880, "N": 5760, "LUT": True, "EXPERTS_P2": 32}  # gpt-oss-20b's gate_up
POINTERS = {"out_ptr": "*bf16", "offsets_ptr": "*i32", "scales_ptr": "*u8"}


def sass(cubin: bytes, *flags: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([f"{TOOLS}/cuobjdump", *flags, f.name], capture_output=True, text=True, check=True).stdout


def loops(code: str) -> list[dict[str, int]]:
    """Each backward branch's body that holds HGMMA: its instructions, and spill stores and loads."""
    ins = [(int(a, 16), t) for a, t in re.findall(r"/\*([0-9a-f]{4,})\*/\s+(.*?);", code)]
    found = []
    for addr, text in ins:
        branch = re.search(r"\bBRA\b.*?(0x[0-9a-f]+)", text)
        if branch and int(branch.group(1), 16) < addr:
            body = [t for a, t in ins if int(branch.group(1), 16) <= a <= addr]
            if any("HGMMA" in t for t in body):
                spills = {op: sum(bool(re.search(rf"\b{op}\b", t)) for t in body) for op in ("STL", "LDL")}
                found.append({"instructions": len(body), **spills})
    return found


def reading(kind: str, tiles: dict[str, int]) -> dict[str, Any]:
    tiles = dict(tiles)
    options = {"num_warps": tiles.pop("num_warps"), "num_stages": tiles.pop("num_stages")}
    if kind == "mx":
        kernel, pointers = moe_kernels._grouped_kernel, {**POINTERS, "x_ptr": "*bf16", "w_ptr": "*u8"}
        constants = {**SHAPE, "SPLIT_X": 0, "W_AS_A": 0, **tiles, "MX": True, "F16": False}
    else:
        kernel, pointers = moe_kernels._grouped_mx_t_kernel, {**POINTERS, "dy_ptr": "*bf16", "blocks_ptr": "*u8"}
        constants = {**SHAPE, **tiles}
    compiled = compile_for_hopper(kernel, pointers, constants, **options)
    usage = sass(compiled.asm["cubin"], "-res-usage")  # type: ignore[attr-defined]
    return {
        "kind": kind,
        **tiles,
        **options,
        "registers": int(re.search(r"REG:(\d+)", usage).group(1)),  # type: ignore[union-attr]
        "spilled_bytes": int(re.search(r"STACK:(\d+)", usage).group(1)),  # type: ignore[union-attr]
        "loops": loops(sass(compiled.asm["cubin"], "-sass")),  # type: ignore[attr-defined]
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--current", action="store_true", help="only the tiles moe_kernels.TILES has now")
    args = parser.parse_args()
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    print(json.dumps({"triton": triton.__version__, "shape": SHAPE}), flush=True)
    for kind in ("mx", "mx_t"):
        grid = [moe_kernels.TILES[kind, "many"]] if args.current else MANY_ROWS[kind]
        for tiles in grid:
            print(json.dumps(reading(kind, tiles)), flush=True)


if __name__ == "__main__":
    main()
