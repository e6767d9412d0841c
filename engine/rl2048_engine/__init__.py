"""The rl2048 engine: one Python process that owns the model (see engine/README.md)."""

__version__ = "0.1.0"
