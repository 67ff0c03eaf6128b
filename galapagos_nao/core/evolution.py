"""Offspring operators of the seed, pure and driven by an explicit generator.

Every function takes the genome and a ``numpy.random.Generator`` and returns new
values; nothing is modified in place and no global random state is touched, so a
run seeded with the same generator breeds the same children.

A child is made in three steps (:func:`spawn_offspring`): :func:`duplicate` a
random slice (with probability ``mutation_rate``), :func:`remove` each layer with
probability ``mutation_rate``, then :func:`mutate` each layer with probability
``mutation_rate`` — either replaced by a fresh layer of a random type seeded from
``layer_types`` or its params perturbed by :func:`mutate_params`. Alongside the
layers, each step tracks which parent layer every child layer came from
(``origins``), which is what weight inheritance needs.

Given the input's shape, every step keeps the child valid: a slice is only
duplicated, a layer only removed, replaced or changed where every layer still
fits the shape reaching it (a convolution or pool only where the input is still
an image, a pool only where pixels are left). A draw that would break the
genome is drawn again a few times, then skipped. Flat genomes never break, so
their draws, and their seeded children, are what they always were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from galapagos_nao.core import genome
from galapagos_nao.core.checks import describe
from galapagos_nao.core.typing import Genome, Layer

__all__ = [
    "DEFAULT_LAYER_TYPES",
    "PARAMETER_SECTION",
    "MutationFailed",
    "Offspring",
    "constraint_violation",
    "copy_layer",
    "fits",
    "genome_key",
    "duplicate",
    "mutate",
    "mutate_params",
    "remove",
    "seed_params",
    "should_mutate",
    "spawn_offspring",
]

#: Name of this module's section in :mod:`galapagos_nao.config.parameters`.
PARAMETER_SECTION = "evolution"

#: The seed's probability of each mutation (duplicate, remove, replace or perturb).
DEFAULT_MUTATION_RATE = 0.25
#: The seed's spread of integer mutations: ``round(Normal(v, std_dev))``.
DEFAULT_STD_DEV = 2
#: The seed's defaults: the types a replaced layer can become, with starting params.
DEFAULT_LAYER_TYPES: dict[str, list[Any]] = {
    "dense": [64, "none"],
    "activation": ["relu"],
    "dropout": [0.5],
    "leaky_relu": [0.2],
}

#: Parent-layer index of each child layer; None marks a layer with no parent.
Origins = tuple[int | None, ...]

#: How often a step redraws a change that would break the genome's shapes.
SHAPE_REDRAWS = 8


def fits(layers: Genome, input_shape: Sequence[int] | None) -> bool:
    """Whether every layer takes the shape reaching it (always, with no shape given)."""
    if input_shape is None:
        return True
    try:
        genome.layer_shapes(layers, input_shape)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Offspring:
    """A child genome with the record of how it was made.

    Attributes:
        layers: The child's genome.
        origins: For each child layer, the parent layer it came from (None if new).
        mutations: Human-readable operator log, e.g. ``"remove 3 ('dropout', [0.5])"``.
    """

    layers: list[Layer]
    origins: Origins
    mutations: tuple[str, ...]


def should_mutate(rng: np.random.Generator, rate: float) -> bool:
    """True with probability ``rate``."""
    return bool(rng.random() < rate)


def duplicate(
    layers: Genome,
    rng: np.random.Generator,
    *,
    rate: float = 1.0,
    all: bool = False,  # noqa: A002 - the seed's name for the option
    origins: Origins | None = None,
    input_shape: Sequence[int] | None = None,
) -> tuple[list[Layer], Origins, list[str]]:
    """With probability ``rate``, copies a random slice and inserts it at a random point.

    Args:
        layers: The genome.
        rng: Source of every random draw.
        rate: Probability that duplication happens at all.
        all: Duplicate the whole genome (the slice is everything), doubling it.
        origins: Origins of ``layers``; identity when None.
        input_shape: Shape of one input sample; given, only a slice and a place
            where every layer still fits are taken (redrawn up to
            :data:`SHAPE_REDRAWS` times, else nothing is duplicated).

    Returns:
        ``(layers, origins, mutations)`` of the result.
    """
    result = [copy_layer(layer) for layer in layers]
    origin = _origins_or_identity(layers, origins)
    if not result or not should_mutate(rng, rate):
        return result, origin, []
    for _ in range(SHAPE_REDRAWS):
        if all:
            start, stop = 0, len(result)
        else:
            start = int(rng.integers(len(result)))
            stop = int(rng.integers(start + 1, len(result) + 1))
        at = int(rng.integers(len(result) + 1))
        grown = result[:at] + [copy_layer(layer) for layer in result[start:stop]] + result[at:]
        if fits(grown, input_shape):
            new_origins = origin[:at] + origin[start:stop] + origin[at:]
            return grown, new_origins, [f"duplicate [{start}:{stop}] at {at}"]
    return result, origin, []


def remove(
    layers: Genome,
    rng: np.random.Generator,
    *,
    rate: float,
    origins: Origins | None = None,
    input_shape: Sequence[int] | None = None,
) -> tuple[list[Layer], Origins, list[str]]:
    """Drops each layer independently with probability ``rate``.

    Given ``input_shape``, a layer whose removal would leave a later one unable
    to take its input stays.
    """
    origin = _origins_or_identity(layers, origins)
    drawn = [should_mutate(rng, rate) for _ in layers]
    dropped: set[int] = set()
    for index in (i for i, drop in enumerate(drawn) if drop):
        trial = [layer for i, layer in enumerate(layers) if i not in dropped and i != index]
        if fits(trial, input_shape):  # else removing it breaks a later layer: it stays
            dropped.add(index)
    log = [f"remove {index} {_show(layers[index])}" for index in sorted(dropped)]
    kept = [copy_layer(layer) for i, layer in enumerate(layers) if i not in dropped]
    kept_origins = tuple(origin[i] for i in range(len(layers)) if i not in dropped)
    return kept, kept_origins, log


def seed_params(type_name: str, layer_types: Mapping[str, Sequence[Any]]) -> list[Any]:
    """A fresh copy of the starting params for ``type_name`` from ``layer_types``."""
    return list(layer_types[type_name])


class MutationFailed(ValueError):
    """A layer's registered ``mutate`` raised or returned a value its spec refuses.

    Breeding drops the child with this message; the run goes on.
    """


def mutate_params(
    params: Sequence[Any], type_name: str, rng: np.random.Generator, *, std_dev: float
) -> list[Any]:
    """Perturbs every param of a layer by the seed's rule for its kind.

    An activation name becomes a random activation, an int ``v`` becomes
    ``round(Normal(v, std_dev))`` clamped to at least 1, a float becomes
    ``uniform(0, 1)``.

    Raises:
        MutationFailed: naming the param when its ``mutate`` (user code, for a
            registered layer) raises or returns a value that fails its check.
    """
    specs = genome.layer_type(type_name).params
    mutated = []
    for position, (value, spec) in enumerate(zip(params, specs, strict=True)):
        where = f"params[{position}] ({spec.name})"
        try:
            new = spec.mutate(value, rng, std_dev)
            valid = spec.is_valid(new)
        except Exception as error:  # user code: any failure drops this child only
            raise MutationFailed(
                f"{where}: mutate raised {type(error).__name__}: {error}"
            ) from error
        if not valid:
            raise MutationFailed(
                f"{where}: mutate returned {describe(new)}; {spec.name} must be {spec.expected}"
            )
        mutated.append(new)
    return mutated


def mutate(
    layers: Genome,
    rng: np.random.Generator,
    *,
    rate: float,
    std_dev: float,
    layer_types: Mapping[str, Sequence[Any]] = DEFAULT_LAYER_TYPES,
    origins: Origins | None = None,
    input_shape: Sequence[int] | None = None,
) -> tuple[list[Layer], Origins, list[str]]:
    """With probability ``rate`` per layer, replaces it or perturbs its params (even odds).

    Given ``input_shape``, a replacement is drawn only from the types that fit
    where the layer stands (a convolution only where the input is still an
    image), and new params that break a shape are drawn again up to
    :data:`SHAPE_REDRAWS` times, else the layer stays as it was.
    """
    origin = list(_origins_or_identity(layers, origins))
    result: list[Layer] = []
    log: list[str] = []
    type_names = sorted(layer_types)
    for index, (type_name, params) in enumerate(layers):
        rest = [copy_layer(layer) for layer in layers[index + 1 :]]
        if not should_mutate(rng, rate):
            result.append((type_name, list(params)))
            continue
        if type_names and should_mutate(rng, 0.5):
            fitting = [
                name
                for name in type_names
                if fits([*result, (name, seed_params(name, layer_types)), *rest], input_shape)
            ]
            if not fitting:
                result.append((type_name, list(params)))
                continue
            new_type = fitting[int(rng.integers(len(fitting)))]
            new_layer: Layer = (new_type, seed_params(new_type, layer_types))
            origin[index] = None  # a replaced layer starts fresh
            log.append(f"replace {index} {_show((type_name, params))} -> {_show(new_layer)}")
        else:
            new_layer = _perturbed(
                result, (type_name, params), rest, index, rng, std_dev, input_shape
            )
            if list(new_layer[1]) != list(params):  # layers without params cannot change
                log.append(f"params {index} {list(params)!r} -> {list(new_layer[1])!r}")
        result.append(new_layer)
    return result, tuple(origin), log


def _perturbed(
    before: Genome,
    layer: Layer,
    after: Genome,
    index: int,
    rng: np.random.Generator,
    std_dev: float,
    input_shape: Sequence[int] | None,
) -> Layer:
    """``layer`` with mutated params that keep the genome's shapes, or unchanged."""
    type_name, params = layer
    for _ in range(SHAPE_REDRAWS):
        try:
            new_layer = (type_name, mutate_params(params, type_name, rng, std_dev=std_dev))
        except MutationFailed as error:
            raise MutationFailed(f"layers[{index}] ({type_name!r}): {error}") from error
        if fits([*before, new_layer, *after], input_shape):
            return new_layer
    return (type_name, list(params))


def spawn_offspring(
    layers: Genome,
    rng: np.random.Generator,
    *,
    mutation_rate: float = DEFAULT_MUTATION_RATE,
    std_dev: float = DEFAULT_STD_DEV,
    layer_types: Mapping[str, Sequence[Any]] = DEFAULT_LAYER_TYPES,
    input_shape: Sequence[int] | None = None,
) -> Offspring:
    """Breeds one child: duplicate, then remove, then mutate, as the seed does.

    Given ``input_shape`` (the parent's), every step keeps the child's shapes
    valid, so a convolutional parent never has a child that cannot be built.
    """
    shape = input_shape
    child, origins, log_duplicate = duplicate(layers, rng, rate=mutation_rate, input_shape=shape)
    child, origins, log_remove = remove(
        child, rng, rate=mutation_rate, origins=origins, input_shape=shape
    )
    child, origins, log_mutate = mutate(
        child,
        rng,
        rate=mutation_rate,
        std_dev=std_dev,
        layer_types=layer_types,
        origins=origins,
        input_shape=shape,
    )
    return Offspring(child, origins, tuple(log_duplicate + log_remove + log_mutate))


def genome_key(layers: Genome) -> tuple[Layer, ...]:
    """A hashable form of a genome, equal for equal genomes (``Network.layers`` has it)."""
    return tuple((type_name, tuple(params)) for type_name, params in layers)


def constraint_violation(
    layers: Genome, *, max_layers: int | None = None, forbid: Sequence[str] = ()
) -> str | None:
    """Why ``layers`` breaks the user's constraints, or None when it keeps them.

    Args:
        layers: The genome.
        max_layers: Most layers allowed; None for no limit.
        forbid: Layer types (``"dropout"``) and activation names (``"sigmoid"``)
            no layer may use, as a type or as a param.

    Returns:
        A one-line reason naming the rule and the offending layer, or None.
    """
    if max_layers is not None and len(layers) > max_layers:
        return f"max_layers {max_layers}: the child has {len(layers)} layers"
    banned = set(forbid)
    for index, (type_name, params) in enumerate(layers):
        if type_name in banned:
            return f"forbid {type_name!r}: layer {index} is {_show((type_name, params))}"
        for value in params:
            if isinstance(value, str) and value in banned:
                return f"forbid {value!r}: layer {index} is {_show((type_name, params))}"
    return None


def copy_layer(layer: Layer) -> Layer:
    """A copy of ``layer`` whose params list can be changed without touching the original."""
    type_name, params = layer
    return (type_name, list(params))


def _origins_or_identity(layers: Genome, origins: Origins | None) -> Origins:
    return tuple(range(len(layers))) if origins is None else tuple(origins)


def _show(layer: Layer) -> str:
    type_name, params = layer
    return f"({type_name!r}, {list(params)!r})"
