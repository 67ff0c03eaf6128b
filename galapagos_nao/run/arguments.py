"""What a run is started with, checked before anything changes: its first networks and hooks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import genome
from galapagos_nao.core.checks import describe
from galapagos_nao.core.network import Network

__all__ = ["checked_hooks", "fitted_to_task", "fresh_seed", "initial_networks", "run_seed"]


def fresh_seed() -> int:
    """A seed drawn from the operating system's entropy (a 62-bit int, as candidates get)."""
    return int(np.random.default_rng().integers(2**62))


def run_seed(seed: int | None, parameters: Parameters) -> int:
    """The seed a run starts with: ``seed``, else ``training.seed``, else a fresh one.

    Always a number, so that the workspace and the journal can record it and a
    replay can run the same generations again.
    """
    if seed is not None:
        return seed
    configured = parameters.settings().training.seed
    return fresh_seed() if configured is None else configured


def initial_networks(net_or_nets: Any) -> list[Network]:
    """Networks from a Network, a genome, or a list of either; validated before anything changes.

    Raises:
        ValueError: naming the argument (and the list index) that is not one.
    """
    if isinstance(net_or_nets, Network):
        return [net_or_nets]
    is_genome = isinstance(net_or_nets, (list, tuple)) and (
        not net_or_nets
        or (
            isinstance(net_or_nets[0], (tuple, list))
            and len(net_or_nets[0]) > 0
            and isinstance(net_or_nets[0][0], str)
        )
    )
    if is_genome:
        return [Network(net_or_nets)]
    if isinstance(net_or_nets, (list, tuple)):
        nets = []
        for index, item in enumerate(net_or_nets):
            if isinstance(item, (list, tuple)) and not item:
                # [[]] reads as a genome whose layer is [] or as one empty genome: refuse both.
                raise ValueError(
                    f"net_or_nets[{index}] is empty: pass [] for one empty genome, "
                    "or a list of genomes or Networks"
                )
            try:
                nets.append(item if isinstance(item, Network) else Network(item))
            except ValueError as error:
                raise ValueError(f"net_or_nets[{index}]: {error}") from None
        return nets
    raise ValueError(
        f"net_or_nets must be a Network, a genome or a list of them, got {describe(net_or_nets)}"
    )


def fitted_to_task(nets: list[Network], input_shape: Sequence[int]) -> list[Network]:
    """The starting networks, each checked against the task's sample shape.

    A genome given as a list becomes a network for MNIST's shape; an untrained
    one takes the task's shape instead, so that breeding sees the shapes
    training will.

    Raises:
        ValueError: naming the list index and the layer that cannot take the
            task's shape (a convolution on flat features).
    """
    fitted = []
    for index, net in enumerate(nets):
        try:
            genome.validate(net.layers, input_shape)
        except ValueError as error:
            where = "net_or_nets" if len(nets) == 1 else f"net_or_nets[{index}]"
            raise ValueError(f"{where}: {error}") from None
        untrained = net.weights is None and net.fitness is None
        if untrained and net.input_shape != tuple(input_shape):
            net = net.replace(input_shape=tuple(input_shape))
        fitted.append(net)
    return fitted


def checked_hooks(name: str, hooks: Iterable[Any]) -> list[Any]:
    """``hooks`` as a list, each checked to be callable.

    Raises:
        ValueError: naming ``name`` (and the index) when it is not a list of callables.
    """
    if isinstance(hooks, (str, bytes)) or not isinstance(hooks, Iterable):
        raise ValueError(f"{name} must be a list of callables, got {describe(hooks)}")
    checked = list(hooks)
    for index, hook in enumerate(checked):
        if not callable(hook):
            raise ValueError(f"{name}[{index}] must be callable, got {describe(hook)}")
    return checked
