"""The seed's examples: its eight-layer genome, a two-generation run and a continual one.

Top layer, beside the package root: runs start on the shared ``gn`` session.
The scripts in ``examples/`` use :func:`example_task` and :func:`run_for` so that
each one also runs in seconds with ``--quick``.
"""

from __future__ import annotations

import logging
import time

import galapagos_nao as gn
from galapagos_nao.core import datasets
from galapagos_nao.core.checks import check_int, check_number
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.typing import Layer
from galapagos_nao.run.loop import Run
from galapagos_nao.ui.logs import ConsoleHandler, enable_console_logging, log_level

__all__ = [
    "conv_example",
    "conv_layers",
    "enable_console_logging",
    "example_task",
    "infinite_example",
    "run_for",
    "seed_layers",
    "short_example",
]

#: Training and test images ``example_task(quick=True)`` keeps of the bundled subset.
QUICK_SIZES = (600, 200)


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


def example_task(quick: bool = False) -> Task:
    """The examples' data: full MNIST, or a small sample of the bundled subset.

    Args:
        quick: Take a class-balanced 600/200 sample of the MNIST subset shipped
            with the package (no download, a candidate trains in a fraction of a
            second) instead of :func:`~galapagos_nao.core.datasets.mnist`.

    Returns:
        The task.
    """
    if quick:
        return datasets.subset(datasets.bundled_mnist(), *QUICK_SIZES)
    return datasets.mnist()


def run_for(run: Run, generations: int, *, timeout: float | None = None) -> bool:
    """Waits until ``run`` has completed ``generations`` more generations, or has ended.

    Continual runs never end by themselves; this is how a script lets one go on
    for a while before steering or stopping it.

    Args:
        run: A started run.
        generations: How many more generations to wait for (≥ 0).
        timeout: Seconds to wait at most; None waits as long as it takes.

    Returns:
        True if the run reached that generation (or ended), False on timeout.

    Raises:
        ValueError: if ``generations`` is negative.
    """
    check_int("generations", generations, minimum=0)
    if timeout is not None:
        check_number("timeout", timeout, low=0)
    target = run.generation + generations
    deadline = None if timeout is None else time.monotonic() + timeout
    while run.generation < target and not run.done():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        run.join(0.05)
    return True
