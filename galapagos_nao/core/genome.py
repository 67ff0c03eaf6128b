"""Genomes: the layer registry, validation with precise errors, and complexity.

A genome is a list of ``(type, params)`` tuples such as
``[("dense", [64, "relu"]), ("dropout", [0.5])]``. Each layer type is registered
with the spec of its parameters (how to check and how to mutate each one) and a
builder that turns it into torch modules. Users add their own types with
:func:`register_layer`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from galapagos_nao.core.checks import describe
from galapagos_nao.core.typing import Genome, Layer

__all__ = [
    "ACTIVATIONS",
    "MAX_LAYERS",
    "LayerType",
    "ParamSpec",
    "SeededDropout",
    "activation_module",
    "build_layer",
    "complexity",
    "layer_type",
    "layer_types",
    "register_layer",
    "validate",
]

#: Most layers a genome may have where a limit is needed: a stored file, or the
#: ``evolution.max_layers`` constraint.
MAX_LAYERS = 4096

#: Activation names of the seed, mapped to torch modules (``none`` adds nothing).
ACTIVATIONS: dict[str, Callable[[], nn.Module] | None] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softrelu": nn.Softplus,
    "none": None,
}


def activation_module(name: str) -> list[nn.Module]:
    """The modules for activation ``name``: one module, or none for ``"none"``."""
    factory = ACTIVATIONS[name]
    return [] if factory is None else [factory()]


@dataclass(frozen=True)
class ParamSpec:
    """How one layer parameter is checked and mutated.

    Attributes:
        name: Name used in error messages, e.g. ``"units"``.
        expected: Human phrase for the valid values, e.g. ``"an int >= 1"``.
        is_valid: Predicate on a value.
        mutate: ``(value, rng, std_dev) -> new value``; the seed's rule for the kind.
    """

    name: str
    expected: str
    is_valid: Callable[[Any], bool]
    mutate: Callable[[Any, np.random.Generator, float], Any]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: The largest finite float32: params end up in float32 tensors, where more is inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_real(value: Any) -> bool:
    # abs() on ints first: math.isfinite(10**400) raises OverflowError instead of saying no.
    if _is_int(value):
        return abs(value) <= FLOAT32_MAX
    return isinstance(value, float) and math.isfinite(value) and abs(value) <= FLOAT32_MAX


def _mutate_int(value: Any, rng: np.random.Generator, std_dev: float) -> int:
    # Seed rule: round(Normal(v, std_dev)); sizes below 1 clamp to 1.
    return max(1, int(round(float(rng.normal(value, std_dev)))))


def _mutate_float(value: Any, rng: np.random.Generator, std_dev: float) -> float:
    # Seed rule: a float becomes uniform(0, 1), whatever it was.
    return float(rng.uniform(0.0, 1.0))


def _mutate_activation(value: Any, rng: np.random.Generator, std_dev: float) -> str:
    names = sorted(ACTIVATIONS)
    return names[int(rng.integers(len(names)))]


#: Positive integer sizes such as a dense layer's units.
UNITS = ParamSpec("units", "an int >= 1", lambda v: _is_int(v) and v >= 1, _mutate_int)
#: An activation name from :data:`ACTIVATIONS`.
ACTIVATION = ParamSpec(
    "activation",
    f"one of {sorted(ACTIVATIONS)}",
    lambda v: isinstance(v, str) and v in ACTIVATIONS,
    _mutate_activation,
)
#: A probability in [0, 1) such as a dropout rate.
RATE = ParamSpec("rate", "a number in [0, 1)", lambda v: _is_real(v) and 0 <= v < 1, _mutate_float)
#: A non-negative slope such as leaky ReLU's alpha (a float32 in the model).
ALPHA = ParamSpec(
    "alpha", "a number in [0, 3.4e38] (float32)", lambda v: _is_real(v) and v >= 0, _mutate_float
)


#: ``(params, in_features) -> (modules, out_features)``.
LayerBuilder = Callable[[Sequence[Any], int], tuple[list[nn.Module], int]]


@dataclass(frozen=True)
class LayerType:
    """A registered layer type.

    Attributes:
        name: The type name used in genomes.
        params: Spec of each positional parameter.
        build: Turns validated params and the incoming feature count into modules.
    """

    name: str
    params: tuple[ParamSpec, ...]
    build: LayerBuilder


class SeededDropout(nn.Module):
    """Dropout that draws its masks from a generator the trainer assigns.

    ``nn.Dropout`` draws from torch's global generator, which concurrent
    candidates share; a per-model generator keeps a seeded run reproducible.

    Args:
        p: Probability of zeroing an element, in [0, 1).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if not self.training or self.p == 0.0:
            return x
        if self.generator is None:
            return nn.functional.dropout(x, self.p, training=True)
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.p
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:  # noqa: D102
        return f"p={self.p}"


def _build_dense(params: Sequence[Any], in_features: int) -> tuple[list[nn.Module], int]:
    units, activation = params
    return [nn.Linear(in_features, units), *activation_module(activation)], units


def _build_activation(params: Sequence[Any], in_features: int) -> tuple[list[nn.Module], int]:
    return activation_module(params[0]), in_features


def _build_dropout(params: Sequence[Any], in_features: int) -> tuple[list[nn.Module], int]:
    return [SeededDropout(params[0])], in_features


def _build_batch_norm(params: Sequence[Any], in_features: int) -> tuple[list[nn.Module], int]:
    return [nn.BatchNorm1d(in_features)], in_features


def _build_leaky_relu(params: Sequence[Any], in_features: int) -> tuple[list[nn.Module], int]:
    return [nn.LeakyReLU(float(params[0]))], in_features


def _build_flatten(params: Sequence[Any], in_features: int) -> tuple[list[nn.Module], int]:
    # Inputs are flattened by the input adapter already, so this is a no-op kept
    # for compatibility with the seed's genomes.
    return [nn.Flatten()], in_features


_registry: dict[str, LayerType] = {}
_registry_lock = threading.Lock()


def _same_function(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are one function, or the same source run twice.

    Re-running a notebook cell makes new function objects from the same code;
    that must count as the same registration, while an edited body does not.
    """
    if a is b:
        return True
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    if code_a is None or code_b is None:
        return False
    cells_a = [c.cell_contents for c in a.__closure__ or ()]
    cells_b = [c.cell_contents for c in b.__closure__ or ()]
    return (
        a.__qualname__ == b.__qualname__
        and a.__module__ == b.__module__
        and code_a.co_code == code_b.co_code
        and code_a.co_consts == code_b.co_consts
        and code_a.co_names == code_b.co_names
        and a.__defaults__ == b.__defaults__
        and len(cells_a) == len(cells_b)
        and all(x is y or _same_function(x, y) for x, y in zip(cells_a, cells_b, strict=True))
    )


def _same_registration(old: LayerType, new: LayerType) -> bool:
    return (
        _same_function(old.build, new.build)
        and len(old.params) == len(new.params)
        and all(
            (a.name, a.expected) == (b.name, b.expected)
            and _same_function(a.is_valid, b.is_valid)
            and _same_function(a.mutate, b.mutate)
            for a, b in zip(old.params, new.params, strict=True)
        )
    )


def register_layer(
    name: str, params: Sequence[ParamSpec], build: LayerBuilder, *, replace: bool = False
) -> LayerType:
    """Registers a layer type so genomes may use it.

    Registering the same type again (a re-run notebook cell: same code, same
    params) is allowed and changes nothing; a different one under a taken name
    needs ``replace=True``.

    Args:
        name: Type name used in genomes.
        params: Spec of each positional parameter (see :data:`UNITS`,
            :data:`ACTIVATION`, :data:`RATE`, :data:`ALPHA`).
        build: ``(params, in_features) -> (modules, out_features)``; it receives
            params that passed validation and the flat feature count coming in.
        replace: Whether a different registration under ``name`` may be replaced.

    Returns:
        The registered :class:`LayerType`.

    Raises:
        ValueError: If ``name`` is empty or not a string, or is registered with
            another definition and ``replace`` is False.
        TypeError: If ``build`` is not callable, a spec is not a ParamSpec or
            ``replace`` is not a bool.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {describe(name)}")
    if not callable(build):
        raise TypeError(f"build must be callable, got {describe(build)}")
    if isinstance(params, (str, bytes)) or not isinstance(params, Iterable):
        raise TypeError(f"params must be a list of ParamSpec, got {describe(params)}")
    params = tuple(params)  # once: a generator read twice would register no params
    for index, spec in enumerate(params):
        if not isinstance(spec, ParamSpec):
            raise TypeError(f"params[{index}] must be a ParamSpec, got {describe(spec)}")
    if not isinstance(replace, bool):
        raise TypeError(f"replace must be a bool, got {describe(replace)}")
    registered = LayerType(name, params, build)
    with _registry_lock:
        old = _registry.get(name)
        if old is not None and not replace:
            if _same_registration(old, registered):
                return old
            raise ValueError(
                f"name: layer type {name!r} is already registered with another definition; "
                "pass replace=True to replace it"
            )
        _registry[name] = registered
    return registered


def layer_types() -> dict[str, LayerType]:
    """A snapshot of the registered layer types by name."""
    with _registry_lock:
        return dict(_registry)


def layer_type(name: str) -> LayerType:
    """The registered type ``name``.

    Raises:
        KeyError: naming the type and the known ones.
    """
    with _registry_lock:
        found = _registry.get(name)
        known = sorted(_registry)
    if found is None:
        raise KeyError(f"unknown layer type {name!r}; known: {known}")
    return found


register_layer("dense", [UNITS, ACTIVATION], _build_dense)
register_layer("activation", [ACTIVATION], _build_activation)
register_layer("dropout", [RATE], _build_dropout)
register_layer("batch_norm", [], _build_batch_norm)
register_layer("leaky_relu", [ALPHA], _build_leaky_relu)
register_layer("flatten", [], _build_flatten)


def _layer_problem(index: int, layer: Any) -> str | None:
    """Describes what is wrong with ``layer`` at ``index``, or None if it is valid."""
    where = f"layers[{index}]"
    if not isinstance(layer, (tuple, list)) or len(layer) != 2:
        return f"{where} must be a (type, params) pair, got {describe(layer)}"
    type_name, params = layer
    known = layer_types()
    if not isinstance(type_name, str) or type_name not in known:
        return f"{where}: unknown layer type {describe(type_name)}; known: {sorted(known)}"
    where = f"{where} ({type_name!r})"
    if not isinstance(params, (list, tuple)):
        return f"{where}: params must be a list, got {describe(params)}"
    spec = known[type_name].params
    if len(params) != len(spec):
        names = [p.name for p in spec]
        return f"{where}: expects {len(spec)} params {names}, got {len(params)}: {list(params)!r}"
    for position, (value, param) in enumerate(zip(params, spec, strict=True)):
        if not param.is_valid(value):
            return (
                f"{where}: params[{position}] ({param.name}) must be {param.expected}, "
                f"got {describe(value)}"
            )
    return None


def validate(layers: Any) -> list[Layer]:
    """Checks a genome and returns a normalised copy.

    Args:
        layers: A list of ``(type, params)`` pairs.

    Returns:
        A new list of ``(type, list(params))`` tuples; the input is not modified.

    Raises:
        ValueError: naming the layer index, type and offending value of the
            first problem found.
    """
    if isinstance(layers, (str, bytes)) or not isinstance(layers, (list, tuple)):
        raise ValueError(f"layers must be a list of (type, params) pairs, got {describe(layers)}")
    for index, layer in enumerate(layers):
        problem = _layer_problem(index, layer)
        if problem is not None:
            raise ValueError(problem)
    return [(type_name, list(params)) for type_name, params in layers]


def complexity(layers: Genome) -> int:
    """The seed's complexity measure: the number of layers."""
    return len(layers)


def build_layer(layer: Layer, in_features: int) -> tuple[list[nn.Module], int]:
    """Builds the modules of one validated layer given the incoming feature count."""
    type_name, params = layer
    return layer_type(type_name).build(params, in_features)
