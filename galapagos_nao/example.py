"""The seed's examples: its eight-layer genome, a two-generation run and a continual one.

Top layer, beside the package root: runs start on the shared ``gn`` session.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import galapagos_nao as gn
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.typing import Layer
from galapagos_nao.run.loop import Run

__all__ = ["enable_console_logging", "infinite_example", "seed_layers", "short_example"]


def seed_layers() -> list[Layer]:
    """The seed's starting genome: eight layers using every built-in type but one."""
    return [
        ("dense", [64, "relu"]),
        ("batch_norm", []),
        ("activation", ["relu"]),
        ("dropout", [0.5]),
        ("dense", [64, "relu"]),
        ("flatten", []),
        ("leaky_relu", [0.2]),
        ("dense", [64, "none"]),
    ]


class _ConsoleHandler(logging.StreamHandler):
    """Writes each record to whatever ``sys.stderr`` is at that moment.

    IPython kernels and pytest swap ``sys.stderr``; binding the stream once
    would send later records to a stale (possibly closed) stream.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always sys.stderr


def enable_console_logging(level: int = logging.INFO) -> None:
    """Shows the ``galapagos_nao`` log lines on stderr, once (idempotent).

    The examples turn this on so that, as in the seed, the session shows
    ``Generations remaining`` and one line per candidate; library code never
    prints by itself.
    """
    root = logging.getLogger("galapagos_nao")
    root.setLevel(level)
    if not any(isinstance(h, _ConsoleHandler) for h in root.handlers):
        handler = _ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)


def short_example(task: Task | None = None, generations: int = 2) -> Run:
    """Evolves the seed genome for two generations on a background thread."""
    enable_console_logging()
    return gn.evolve(seed_layers(), generations, task)


def infinite_example(task: Task | None = None) -> Run:
    """Evolves the seed genome until ``run.stop()``."""
    enable_console_logging()
    return gn.evolve_continual(seed_layers(), task)
