"""Typed engine errors: every failure becomes `{error: {kind, message}}` on the wire."""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal["bad_request", "not_loaded", "model_folder", "out_of_memory", "internal"]


class EngineError(Exception):
    """An error the caller can act on; `kind` is one of the protocol's error kinds."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
