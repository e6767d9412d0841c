"""Loads a strategy and calls it once per move, inside the Pyodide sandbox.

The runtime wall, which holds without the static checks: the strategy's globals get a fresh
allowlist of builtins (no open/exec/eval/compile/getattr/globals/...), an `__import__` that
admits only the modules policy.py allows and hands out a private copy of each (so one
strategy cannot patch `math` or reseed `random` for the next one; `random` is seeded from the
game's seed), and a `print` whose output is counted and dropped. `harden()` removes Pyodide's
bridges to JavaScript (`js`, `pyodide_js`, `pyodide`, `_pyodide*`) from `sys.modules` and its
import hook from `sys.meta_path`.

The JavaScript side talks to this module through `prepare`, `load`, `board_cells`, `step`
and `last_error`. `step` returns the move (a str), 0 when the strategy returned something
else, 1 when it raised, 2 when it was interrupted (KeyboardInterrupt).
"""

import array
import builtins
import json
import random as _random
import sys
import types
from typing import Any

from checks import check
from policy import attribute_forbidden, module_verdict

SAFE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
    "classmethod", "complex", "dict", "divmod", "enumerate", "filter", "float", "format",
    "frozenset", "hash", "hex", "id", "int", "isinstance", "issubclass", "iter", "len",
    "list", "map", "max", "min", "next", "object", "oct", "ord", "pow", "property", "range",
    "repr", "reversed", "round", "set", "slice", "sorted", "staticmethod", "str", "sum",
    "super", "tuple", "type", "zip", "__build_class__", "None", "True", "False",
    "Ellipsis", "NotImplemented",
    "ArithmeticError", "AssertionError", "AttributeError", "BaseException", "Exception",
    "IndexError", "KeyError", "LookupError", "MemoryError", "NameError", "NotImplementedError",
    "OverflowError", "RecursionError", "RuntimeError", "StopIteration", "TypeError",
    "ValueError", "ZeroDivisionError", "ImportError", "KeyboardInterrupt", "UnboundLocalError",
)  # fmt: skip

MESSAGE_CHARS = 300


class OutputLimitExceeded(RuntimeError):
    pass


_code: Any = None  # the compiled strategy module
_strategy: Any = None
_modules: dict[str, types.ModuleType] = {}
_granted: dict[tuple[str, tuple[str, ...]], types.ModuleType] = {}  # this game's imports
_seed = 0
_output_left = 0
_output_limit = 0
_size = 0
_cells = array.array("i")
last_error = ""


def _describe(e: BaseException) -> str:
    try:
        text = f"{type(e).__name__}: {e}"
    except BaseException:
        text = type(e).__name__
    return text[:MESSAGE_CHARS]


def _print(*args: object, sep: object = " ", end: object = "\n", **_: object) -> None:
    global _output_left
    text = str(sep).join(str(a) for a in args) + str(end)
    _output_left -= len(text)
    if _output_left < 0:
        raise OutputLimitExceeded(f"more than {_output_limit} characters of output")


def _private_copy(module: types.ModuleType) -> types.ModuleType:
    """A fresh module holding the public names of `module`; `random`'s functions get a new
    generator seeded from the game's seed."""
    copy = types.ModuleType(module.__name__)
    for name, value in vars(module).items():
        if not name.startswith("_"):
            setattr(copy, name, value)
    if module is _random:
        rng = _random.Random(_seed)
        for name, value in vars(module).items():
            if getattr(value, "__self__", None) is getattr(_random, "_inst", None):
                setattr(copy, name, getattr(rng, name))
    return copy


def _guarded_import(
    name: str, globals: object = None, locals: object = None, fromlist: Any = (), level: int = 0
) -> types.ModuleType:
    key = (name, tuple(fromlist) if fromlist else ())
    if not level and key in _granted:
        return _granted[key]
    if level:
        raise ImportError("relative imports are not allowed")
    if module_verdict(name):
        raise ImportError(f"import of {name} is not allowed")
    for item in fromlist or ():
        if item == "*" or attribute_forbidden(str(item)):
            raise ImportError(f"from {name} import {item} is not allowed")
    builtins.__import__(name, None, None, fromlist, 0)
    wanted = name if fromlist else name.split(".")[0]
    if wanted not in _modules:
        _modules[wanted] = _private_copy(sys.modules[wanted])
    _granted[key] = _modules[wanted]
    return _modules[wanted]


def _fresh_builtins() -> dict[str, Any]:
    table = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
    table["print"] = _print
    table["__import__"] = _guarded_import
    return table


def prepare(source: str, run_checks: bool) -> str:
    """Checks and compiles a strategy; JSON `{findings, error}` (error: why it cannot load)."""
    global _code
    _code = None
    findings = check(source) if run_checks else []
    if findings:
        return json.dumps({"findings": findings, "error": None})
    try:
        _code = compile(source, "<strategy>", "exec")
    except BaseException as e:
        return json.dumps({"findings": [], "error": _describe(e)})
    return json.dumps({"findings": [], "error": None})


def load(seed: str, output_limit: int) -> int:
    """Runs the compiled module in fresh globals for one game: 0 loaded, 1 failed, 2 interrupted."""
    global _strategy, _seed, _output_left, _output_limit, last_error
    _strategy = None
    _modules.clear()
    _granted.clear()
    _seed = int(seed)
    _output_left = _output_limit = output_limit
    scope: dict[str, Any] = {"__builtins__": _fresh_builtins(), "__name__": "strategy"}
    try:
        exec(_code, scope)
        fn = scope.get("strategy")
        if not callable(fn):
            last_error = "the program defines no function strategy"
            return 1
        _strategy = fn
        return 0
    except KeyboardInterrupt:
        return 2
    except BaseException as e:
        last_error = _describe(e)
        return 1


def board_cells(size: int) -> array.array:
    """The buffer JavaScript writes each move's tiles into (row-major int32)."""
    global _size, _cells
    if size != _size:
        _size = size
        _cells = array.array("i", [0] * (size * size))
    return _cells


def step() -> str | int:
    """Calls the strategy once with a fresh list of lists built from the buffer."""
    global last_error
    try:
        flat = _cells.tolist()
        n = _size
        board = [flat[i : i + n] for i in range(0, n * n, n)]
        move = _strategy(board)
        if type(move) is str:
            return move
        try:
            shown = repr(move)[:80]
        except BaseException:
            shown = type(move).__name__
        last_error = f"returned {shown}, not a key"
        return 0
    except KeyboardInterrupt:
        return 2
    except BaseException as e:
        last_error = _describe(e)
        return 1


def harden() -> None:
    """Makes Pyodide's bridges to JavaScript unreachable by import."""
    bridges = ("js", "pyodide_js", "pyodide", "_pyodide", "_pyodide_core", "micropip")
    for name in list(sys.modules):
        if name.split(".")[0] in bridges:
            del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "JsFinder"]
