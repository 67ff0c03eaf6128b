"""What a layer type is: the spec of its params, its builder, and the shapes it maps.

A layer sees the shape of one sample coming in: ``(channels, height, width)`` for
an image, ``(features,)`` once flattened. :class:`LayerType` says what comes out
(:meth:`LayerType.output_shape`) without building anything, builds the modules
(:meth:`LayerType.build_for`) and counts the multiply-adds
(:meth:`LayerType.macs`). Types written before shapes existed take and return a
feature count; they still work, on flat inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "ACTIVATION",
    "ACTIVATIONS",
    "ALPHA",
    "CHANNELS",
    "FLOAT32_MAX",
    "KERNEL_SIZE",
    "POOL_SIZE",
    "RATE",
    "UNITS",
    "LayerType",
    "ParamSpec",
    "Shape",
    "ShapeError",
    "activation_module",
    "describe_shape",
    "same_registration",
    "is_image",
]

#: Shape of one sample: ``(channels, height, width)`` for images, ``(features,)`` flat.
Shape = tuple[int, ...]

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


class ShapeError(ValueError):
    """A layer cannot take the shape that reaches it; the message says what would fit."""


def is_image(shape: Shape) -> bool:
    """Whether ``shape`` is ``(channels, height, width)``."""
    return len(shape) == 3


def describe_shape(shape: Shape) -> str:
    """``(16, 14, 14)`` as ``16×14×14``; a flat shape as ``64 features``."""
    if is_image(shape):
        return "×".join(map(str, shape))
    return f"{math.prod(shape)} features"


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


#: Odd kernel sizes a convolution may have ("same" padding needs an odd size).
KERNEL_SIZES = (1, 3, 5, 7)
#: Window sizes a pooling layer may have (its stride equals its size).
POOL_SIZES = (2, 3)


def _draw_from(choices: Sequence[int]) -> Callable[[Any, np.random.Generator, float], int]:
    """A mutation that draws a new value from ``choices`` (sizes with a fixed set)."""

    def mutate(value: Any, rng: np.random.Generator, std_dev: float) -> int:
        return int(choices[int(rng.integers(len(choices)))])

    return mutate


#: Positive integer sizes such as a dense layer's units.
UNITS = ParamSpec("units", "an int >= 1", lambda v: _is_int(v) and v >= 1, _mutate_int)
#: A convolution's output channels; mutates like dense widths.
CHANNELS = ParamSpec("channels", "an int >= 1", lambda v: _is_int(v) and v >= 1, _mutate_int)
#: A convolution's kernel size: odd, 1 to 7.
KERNEL_SIZE = ParamSpec(
    "kernel_size",
    f"an odd int in {list(KERNEL_SIZES)}",
    lambda v: _is_int(v) and v in KERNEL_SIZES,
    _draw_from(KERNEL_SIZES),
)
#: A pooling window (and stride): 2 or 3.
POOL_SIZE = ParamSpec(
    "size",
    f"an int in {list(POOL_SIZES)}",
    lambda v: _is_int(v) and v in POOL_SIZES,
    _draw_from(POOL_SIZES),
)
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

#: ``(params, in_shape) -> (modules, out_shape)``; a legacy type takes and returns ints.
LayerBuilder = Callable[[Sequence[Any], Any], tuple[list[nn.Module], Any]]
#: ``(params, in_shape) -> out_shape``, raising :class:`ShapeError` when it cannot fit.
ShapeRule = Callable[[Sequence[Any], Shape], Shape]
#: ``(params, in_shape, out_shape) -> multiply-adds per sample``.
MacsRule = Callable[[Sequence[Any], Shape, Shape], int]


@dataclass(frozen=True)
class LayerType:
    """A registered layer type.

    Attributes:
        name: The type name used in genomes.
        params: Spec of each positional parameter.
        build: Turns validated params and the incoming shape into modules. A
            type that is not ``shape_aware`` receives and returns a feature
            count instead (the form every type had before images).
        shape_aware: Whether ``build`` takes and returns shapes.
        needs_image: Whether the layer wants the input as an image: a genome
            holding one keeps its input ``(channels, height, width)``; one
            without flattens it first, as networks always did.
        shape_rule: Says the output shape without building anything; when
            None, it is read off a build on the meta device (no memory).
        macs_rule: Multiply-adds per sample; when None, counted from a meta build.
    """

    name: str
    params: tuple[ParamSpec, ...]
    build: LayerBuilder
    shape_aware: bool = False
    needs_image: bool = False
    shape_rule: ShapeRule | None = None
    macs_rule: MacsRule | None = None

    def output_shape(self, params: Sequence[Any], in_shape: Shape) -> Shape:
        """The shape leaving this layer when ``in_shape`` enters it.

        Raises:
            ShapeError: when the layer cannot take ``in_shape``.
        """
        if self.shape_rule is not None:
            return self.shape_rule(params, in_shape)
        if not self.shape_aware:
            return (self._legacy_features(params, math.prod(in_shape)),)
        with torch.device("meta"):
            _, out_shape = self.build_for(params, in_shape)
        return out_shape

    def build_for(self, params: Sequence[Any], in_shape: Shape) -> tuple[list[nn.Module], Shape]:
        """Builds the modules for ``in_shape`` and says the shape they produce.

        A legacy (feature-count) type on an image gets a flatten in front.
        """
        if self.shape_aware:
            modules, out_shape = self.build(params, in_shape)
            return list(modules), _as_shape(out_shape, self.name)
        features = math.prod(in_shape)
        modules, out_features = self.build(params, features)
        flatten: list[nn.Module] = [nn.Flatten()] if len(in_shape) > 1 else []
        return flatten + list(modules), (_as_features(out_features, self.name),)

    def macs(self, params: Sequence[Any], in_shape: Shape, out_shape: Shape) -> int:
        """Multiply-adds per sample of this layer's forward pass."""
        if self.macs_rule is not None:
            return self.macs_rule(params, in_shape, out_shape)
        if not self.shape_aware:
            # A legacy type with a "units" param maps features -> units, as a dense layer.
            has_units = any(spec.name == "units" for spec in self.params)
            return math.prod(in_shape) * math.prod(out_shape) if has_units else 0
        return _meta_macs(self, params, in_shape)

    def _legacy_features(self, params: Sequence[Any], features: int) -> int:
        with torch.device("meta"):
            _, out_features = self.build(params, features)
        return _as_features(out_features, self.name)


def _as_shape(value: Any, name: str) -> Shape:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if (
        not isinstance(value, (tuple, list))
        or not value
        or not all(_is_int(size) and size >= 1 for size in value)
    ):
        raise ShapeError(f"the builder of {name!r} returned the shape {value!r}, not ints >= 1")
    return tuple(value)


def _as_features(value: Any, name: str) -> int:
    if not _is_int(value) or value < 1:
        raise ShapeError(f"the builder of {name!r} returned {value!r} features, not an int >= 1")
    return int(value)


def _meta_macs(layer: LayerType, params: Sequence[Any], in_shape: Shape) -> int:
    """Multiply-adds counted by running the layer once on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        modules, _ = layer.build_for(params, in_shape)
        sample = torch.empty((1, *in_shape))
        with FlopCounterMode(display=False) as counter:
            for module in modules:
                sample = module(sample)
    return int(counter.get_total_flops() // 2)


def same_function(a: Any, b: Any) -> bool:
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
        and all(x is y or same_function(x, y) for x, y in zip(cells_a, cells_b, strict=True))
    )


def same_registration(old: LayerType, new: LayerType) -> bool:
    """Whether two registrations of one name define the same type (a re-run cell)."""
    return (
        same_function(old.build, new.build)
        and len(old.params) == len(new.params)
        and all(
            (a.name, a.expected) == (b.name, b.expected)
            and same_function(a.is_valid, b.is_valid)
            and same_function(a.mutate, b.mutate)
            for a, b in zip(old.params, new.params, strict=True)
        )
    )
