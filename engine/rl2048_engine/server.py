"""The JSON-lines loop: one request per stdin line, one response per stdout line.

stdout carries protocol lines only: at start the real stdout is duplicated for replies and
file descriptor 1 and `sys.stdout` are pointed at stderr, so stray prints, warnings and native
libraries' output can never corrupt the stream.
Every exception becomes an `{error: {kind, message}}` reply; `shutdown` or EOF exits 0.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
import warnings
from typing import Any, TextIO

import torch
from pydantic import ValidationError

from .engine import Engine
from .errors import EngineError


def main() -> int:
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")  # the protocol's own copy of stdout
    os.dup2(2, 1)  # anything else written to stdout, native libraries included, goes to stderr
    sys.stdout = sys.stderr
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    warnings.simplefilter("default")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    engine = Engine()
    for line in sys.stdin:
        if not line.strip():
            continue
        request_id, method, reply = handle_line(engine, line)
        write(replies, {"id": request_id, **reply})
        if method == "shutdown" and "result" in reply:
            break
    return 0


def handle_line(engine: Engine, line: str) -> tuple[Any, str | None, dict[str, Any]]:
    """Parse and run one request; returns (id, method, {"result": ...} or {"error": ...})."""
    request_id: Any = None
    method: str | None = None
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise EngineError("bad_request", "a request must be a JSON object")
        request_id = request.get("id")
        method = request.get("method")
        if not isinstance(method, str) or method not in engine.handlers:
            raise EngineError("bad_request", f"unknown method {method!r}")
        params_type, handler = engine.handlers[method]
        params = params_type.model_validate(request.get("params") or {})
        return request_id, method, {"result": handler(params)}
    except EngineError as err:
        return request_id, method, error(err.kind, err.message)
    except json.JSONDecodeError as err:
        return request_id, method, error("bad_request", f"not JSON: {err}")
    except ValidationError as err:
        return request_id, method, error("bad_request", f"{method}: {_validation_message(err)}")
    except torch.OutOfMemoryError as err:
        _free_memory()
        return request_id, method, error("out_of_memory", str(err).splitlines()[0])
    except Exception as err:  # noqa: BLE001 - the engine must survive anything
        traceback.print_exc(file=sys.stderr)
        return request_id, method, error("internal", f"{type(err).__name__}: {err}")


def error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"kind": kind, "message": message}}


def write(out: TextIO, reply: dict[str, Any]) -> None:
    try:
        line = json.dumps(reply, allow_nan=False)
    except ValueError as err:  # NaN or infinity in a result
        line = json.dumps({"id": reply.get("id"), **error("internal", f"result not finite: {err}")})
    out.write(line + "\n")
    out.flush()


def _validation_message(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "params"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _free_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
