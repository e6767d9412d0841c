"""A reader of the few PTX instructions the engine's inline assembly uses, to run it on the CPU.

`run(asm, operands, memory)` executes `asm` (a Triton `inline_asm_elementwise` body: `$i` are its
operands) on 32-bit registers held as Python ints, loads from `memory` (a bytes object, the
addresses are offsets into it), and returns the operands after it. Semantics as the PTX ISA
gives them: `prmt` in its default mode (bytes of {b, a} picked by the selector's nibbles, bit 3
of a nibble replicating the picked byte's sign), `lop3` (its table indexed by a, b, c as bits 2,
1, 0), `cvt.rn.f16x2.e4m3x2` (the low byte to the low half), f16x2 arithmetic rounded once per
operation. Anything else raises, so an instruction the assembly gains must be added here.
"""

from __future__ import annotations

import re
import struct

import numpy as np
import torch

MASK = 0xFFFFFFFF


def f16(bits: int) -> float:
    return float(np.array([bits & 0xFFFF], dtype=np.uint16).view(np.float16)[0])


def f16_bits(value: float) -> int:
    return int(np.array([value], dtype=np.float16).view(np.uint16)[0])  # one rounding, to nearest even


def f32(bits: int) -> float:
    return float(struct.unpack("<f", struct.pack("<I", bits & MASK))[0])


def f32_bits(value: float) -> int:
    return int(struct.unpack("<I", struct.pack("<f", np.float32(value)))[0])


def bf16(bits: int) -> float:
    return f32((bits & 0xFFFF) << 16)


def halves(bits: int) -> tuple[float, float]:
    return f16(bits), f16(bits >> 16)


def pair(low: float, high: float) -> int:
    return f16_bits(low) | f16_bits(high) << 16


def e4m3(byte: int) -> float:
    return float(torch.tensor([byte & 0xFF], dtype=torch.uint8).view(torch.float8_e4m3fn).float())


def prmt(a: int, b: int, selector: int) -> int:
    source = (a & MASK) | (b & MASK) << 32
    out = 0
    for i in range(4):
        nibble = (selector >> (4 * i)) & 15
        byte = (source >> (8 * (nibble & 7))) & 0xFF
        out |= ((0xFF if byte & 0x80 else 0) if nibble & 8 else byte) << (8 * i)
    return out


def run(asm: str, operands: list[int], memory: bytes) -> list[int]:
    ops = list(operands)
    regs: dict[str, int] = {}

    def get(name: str) -> int:
        name = name.strip()
        if name.startswith("$"):
            return ops[int(name[1:])]
        if re.fullmatch(r"-?(0x[0-9a-fA-F]+|\d+)", name):
            return int(name, 0) & MASK
        return regs[name]

    def put(name: str, value: int) -> None:
        name = name.strip()
        if name.startswith("$"):
            ops[int(name[1:])] = value & MASK
        else:
            regs[name] = value & MASK

    def load(address: str, size: int) -> bytes:
        base, _, offset = address.strip("[] ").partition("+")
        at = get(base) + (int(offset, 0) if offset else 0)
        return memory[at : at + size]

    for line in asm.splitlines():
        line = line.strip().rstrip(";")
        if not line or line in "{}" or line.startswith(".reg"):
            continue
        op, _, rest = line.partition(" ")
        if op == "mov.b32" and rest.startswith("{"):  # split a register into its halves
            names, source = rest[1:].split("}")
            low, high = names.split(",")
            value = get(source.strip(" ,"))
            put(low, value & 0xFFFF)
            put(high, value >> 16)
            continue
        if op == "ld.global.v4.b32":
            names, address = rest[1:].split("}")
            for name, word in zip(names.split(","), struct.unpack("<4I", load(address.strip(" ,"), 16))):
                put(name, word)
            continue
        args = [a.strip() for a in rest.split(",")]
        if op == "ld.global.nc.u8":
            put(args[0], load(args[1], 1)[0])
            continue
        d, v = args[0], [get(a) for a in args[1:]]
        if op == "mov.b32":
            put(d, v[0])
        elif op == "shl.b32":
            put(d, v[0] << v[1])
        elif op in ("shr.b32", "shr.u32"):
            put(d, v[0] >> v[1])
        elif op == "and.b32":
            put(d, v[0] & v[1])
        elif op == "or.b32":
            put(d, v[0] | v[1])
        elif op == "add.u32":
            put(d, v[0] + v[1])
        elif op == "min.u32":
            put(d, min(v[0], v[1]))
        elif op == "lop3.b32":  # bit i of d: bit (a_i b_i c_i, as a 3-bit number) of the table v[3]
            put(d, sum(((v[3] >> ((v[0] >> i & 1) << 2 | (v[1] >> i & 1) << 1 | (v[2] >> i & 1))) & 1) << i for i in range(32)))
        elif op == "prmt.b32":
            put(d, prmt(v[0], v[1], v[2]))
        elif op == "cvt.rn.f16x2.e4m3x2":
            put(d, pair(e4m3(v[0]), e4m3(v[0] >> 8)))
        elif op == "mul.rn.f16x2":
            put(d, pair(*(x * y for x, y in zip(halves(v[0]), halves(v[1])))))
        elif op == "fma.rn.f16x2":
            put(d, pair(*(x * y + z for x, y, z in zip(halves(v[0]), halves(v[1]), halves(v[2])))))
        elif op == "cvt.f32.f16":
            put(d, f32_bits(f16(v[0])))
        elif op == "add.f32":
            put(d, f32_bits(f32(v[0]) + f32(v[1])))
        elif op == "fma.rn.f32":
            put(d, f32_bits(f32(v[0]) * f32(v[1]) + f32(v[2])))
        else:
            raise NotImplementedError(f"PTX reader: {line}")
    return ops
