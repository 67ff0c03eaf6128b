"""One-point crossover of two parents the user chose: of genomes, and of networks with weights.

Evolution breeds from one parent at a time (:mod:`~galapagos_nao.core.evolution`);
crossover is the interactive counterpart, as in Picbreeder: the person picks two
networks and gets a child made of a head of the first and a tail of the second,
ready for ``gn.Selection.put_unevaluated``. Wherever a layer kept its shapes the
child starts from the trained weights of the parent that gave it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from galapagos_nao.core.checks import describe
from galapagos_nao.core.evolution import Origins, copy_layer, fits
from galapagos_nao.core.inheritance import inherit_weights
from galapagos_nao.core.network import Network, build, seed_init
from galapagos_nao.core.typing import Genome, Layer

__all__ = ["crossover", "crossover_networks"]


def crossover_networks(first: Network, second: Network, rng: np.random.Generator) -> Network:
    """A new, unevaluated child: ``first[:i] + second[j:]`` (see :func:`crossover`).

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


def crossover(
    first: Genome,
    second: Genome,
    rng: np.random.Generator,
    *,
    input_shape: Sequence[int] | None = None,
) -> tuple[list[Layer], Origins, Origins]:
    """One-point crossover: a head of ``first`` followed by a tail of ``second``.

    The cut points are drawn so that each parent gives at least one layer when
    it has any: ``first[:i] + second[j:]`` with ``1 <= i <= len(first)`` and
    ``0 <= j < len(second)``. Given ``input_shape``, a pair of cuts whose child
    would not fit it (a convolutional tail after a flat head) is replaced by one
    drawn from the pairs that fit.

    Returns:
        ``(layers, origins_in_first, origins_in_second)``: the child and, for
        each child layer, its index in the parent it came from (None where it
        came from the other one), which :func:`~galapagos_nao.core.inheritance.inherit_weights`
        takes once per parent.

    Raises:
        ValueError: when no pair of cuts gives a child that fits ``input_shape``.
    """
    cut_first = int(rng.integers(1, len(first) + 1)) if first else 0
    cut_second = int(rng.integers(len(second))) if second else 0
    if not fits([*first[:cut_first], *second[cut_second:]], input_shape):
        cut_first, cut_second = _fitting_cuts(first, second, rng, input_shape)
    head = [copy_layer(layer) for layer in first[:cut_first]]
    tail = [copy_layer(layer) for layer in second[cut_second:]]
    from_first: Origins = (*range(cut_first), *([None] * len(tail)))
    from_second: Origins = (*([None] * len(head)), *range(cut_second, len(second)))
    return head + tail, from_first, from_second


def _fitting_cuts(
    first: Genome, second: Genome, rng: np.random.Generator, input_shape: Sequence[int] | None
) -> tuple[int, int]:
    pairs = [
        (i, j)
        for i in range(1, len(first) + 1)
        for j in range(len(second))
        if fits([*first[:i], *second[j:]], input_shape)
    ]
    if not pairs:
        raise ValueError(
            f"no head of the first genome followed by a tail of the second fits the input "
            f"{tuple(input_shape or ())}: every such child puts a convolution or pool after "
            "a layer that flattened"
        )
    return pairs[int(rng.integers(len(pairs)))]
