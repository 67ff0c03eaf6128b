"""A child network from two parents the user chose: one-point crossover with their weights.

Evolution breeds from one parent at a time (:mod:`~galapagos_nao.core.evolution`);
crossover is the interactive counterpart, as in Picbreeder: the person picks two
networks and gets a child made of a head of the first and a tail of the second,
ready for ``gn.Selection.put_unevaluated``. Wherever a layer kept its shapes the
child starts from the trained weights of the parent that gave it.
"""

from __future__ import annotations

import numpy as np
import torch

from galapagos_nao.core.checks import describe
from galapagos_nao.core.evolution import crossover
from galapagos_nao.core.network import Network, build, inherit_weights, seed_init

__all__ = ["crossover_networks"]


def crossover_networks(first: Network, second: Network, rng: np.random.Generator) -> Network:
    """A new, unevaluated child: ``first[:i] + second[j:]`` (see :func:`evolution.crossover`).

    Args:
        first: Gives the head of the child (and its ``parent_id``, input shape,
            classes and input transform).
        second: Gives the tail.
        rng: Draws the cut points and seeds the init of layers neither parent can give.

    Returns:
        The child, with weights when either parent has some: the head from
        ``first``, the tail and the classification head from ``second`` where
        shapes allow, fresh seeded init elsewhere.

    Raises:
        ValueError: if either is not a Network, they differ in input shape or
            classes, or no head of ``first`` and tail of ``second`` fit the input.
    """
    for name, net in (("first", first), ("second", second)):
        if not isinstance(net, Network):
            raise ValueError(f"{name} must be a Network, got {describe(net)}")
    if (first.input_shape, first.n_classes) != (second.input_shape, second.n_classes):
        raise ValueError(
            f"first ({first.id}) takes {first.input_shape} → {first.n_classes} classes but "
            f"second ({second.id}) takes {second.input_shape} → {second.n_classes}: "
            "crossover needs networks of the same task"
        )
    layers, from_first, from_second = crossover(
        first.layers, second.layers, rng, input_shape=first.input_shape
    )
    cut_first = sum(origin is not None for origin in from_first)
    cut_second = len(second.layers) - (len(layers) - cut_first)
    seed = int(rng.integers(2**62))
    weights = None
    if first.weights is not None or second.weights is not None:
        model = build(layers, first.input_shape, first.n_classes, first.input_transform)
        seed_init(model, torch.Generator().manual_seed(seed))
        for parent, origins in ((first, from_first), (second, from_second)):
            if parent.weights is not None:
                inherit_weights(model, parent.weights, origins)
        weights = model.state_dict()
    return Network(
        tuple(layers),
        input_shape=first.input_shape,
        n_classes=first.n_classes,
        parent_id=first.id,
        mutations=(f"crossover {first.id[:8]}[:{cut_first}] + {second.id[:8]}[{cut_second}:]",),
        weights=weights,
        input_transform=first.input_transform,
    )
