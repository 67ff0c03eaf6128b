"""The seed's examples: its eight-layer genome, a two-generation run and a continual one.

Top layer, beside the package root: runs start on the shared ``gn`` session.
"""

from __future__ import annotations

import logging

import galapagos_nao as gn
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.typing import Layer
from galapagos_nao.run.loop import Run
from galapagos_nao.ui.logs import ConsoleHandler, enable_console_logging, log_level

__all__ = [
    "conv_example",
    "conv_layers",
    "enable_console_logging",
    "infinite_example",
    "seed_layers",
    "short_example",
]


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


def conv_layers() -> list[Layer]:
    """A small seed CNN: two convolution-and-pool stages, then a dense layer.

    The shape of the network a tutorial starts MNIST with (about 30k
    parameters); evolution then widens, deepens, prunes and re-kernels it.
    """
    return [
        ("conv2d", [16, 3, "relu"]),
        ("max_pool", [2]),
        ("conv2d", [32, 3, "relu"]),
        ("max_pool", [2]),
        ("dense", [64, "relu"]),
    ]


def _show_generations() -> None:
    """The examples' verbosity: one line per generation, unless the user chose a level."""
    if not any(type(h) is ConsoleHandler for h in logging.getLogger("galapagos_nao").handlers):
        log_level("generation")


def short_example(task: Task | None = None, generations: int = 2) -> Run:
    """Evolves the seed genome for two generations on a background thread."""
    _show_generations()
    return gn.evolve(seed_layers(), generations, task)


def infinite_example(task: Task | None = None) -> Run:
    """Evolves the seed genome until ``run.stop()``."""
    _show_generations()
    return gn.evolve_continual(seed_layers(), task)


def conv_example(task: Task | None = None, generations: int = 2) -> Run:
    """Evolves :func:`conv_layers` for two generations on a background thread.

    The short example's counterpart for image genomes: children keep their
    shapes valid, and a child whose convolution gained or lost channels
    starts from its parent's kernels.
    """
    _show_generations()
    return gn.evolve(conv_layers(), generations, task)
