"""The benchmark harness behind ``python -m rnnkit bench`` (``python -m rnnkit bench --help``).

Modules: ``problems`` (cases, weights, FLOP counts), ``runner`` (the interface to an implementation),
``adapters`` (the table of rnnkit/reference adapters per cell), ``peers`` (torch, Keras, ONNX Runtime),
``timing`` (validation, alternating blocks), ``goals`` (the speed goals, their spreads and verdicts),
``report`` (tables, JSON, Markdown, PNG), ``cli`` (the command).
"""

from .cli import main

__all__ = ["main"]
