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
from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from galapagos_nao.core import builtin_layers, seeded_dropout
from galapagos_nao.core.checks import describe
from galapagos_nao.core.layer_spec import (
    ACTIVATION,
    ACTIVATIONS,
    ALPHA,
    CHANNELS,
    FLOAT32_MAX,
    KERNEL_SIZE,
    POOL_SIZE,
    RATE,
    UNITS,
    LayerBuilder,
    LayerType,
    MacsRule,
    ParamSpec,
    Shape,
    ShapeError,
    ShapeRule,
    activation_module,
    same_registration,
)
from galapagos_nao.core.seeded_dropout import SeededDropout
from galapagos_nao.core.typing import Genome, Layer

__all__ = [
    "ACTIVATION",
    "ACTIVATIONS",
    "ALPHA",
    "CHANNELS",
    "FLOAT32_MAX",
    "KERNEL_SIZE",
    "MAX_LAYERS",
    "POOL_SIZE",
    "RATE",
    "UNITS",
    "LayerType",
    "ParamSpec",
    "SeededDropout",
    "Shape",
    "ShapeError",
    "activation_module",
    "build_layer",
    "complexity",
    "entry_shape",
    "is_builtin",
    "layer_shapes",
    "layer_type",
    "layer_types",
    "macs",
    "register_layer",
    "validate",
]

#: Most layers a genome may have where a limit is needed: a stored file, or the
#: ``evolution.max_layers`` constraint.
MAX_LAYERS = 4096


_registry: dict[str, LayerType] = {}
_registry_lock = threading.Lock()


def register_layer(
    name: str,
    params: Sequence[ParamSpec],
    build: LayerBuilder,
    *,
    replace: bool = False,
    shape_aware: bool = False,
) -> LayerType:
    """Registers a layer type so genomes may use it.

    Registering the same type again (a re-run notebook cell: same code, same
    params) is allowed and changes nothing; a different one under a taken name
    needs ``replace=True``.

    Args:
        name: Type name used in genomes.
        params: Spec of each positional parameter (see :data:`UNITS`,
            :data:`CHANNELS`, :data:`KERNEL_SIZE`, :data:`POOL_SIZE`,
            :data:`ACTIVATION`, :data:`RATE`, :data:`ALPHA`).
        build: ``(params, in_features) -> (modules, out_features)``: it receives
            params that passed validation and the flat feature count coming in.
            With ``shape_aware=True`` it takes and returns shapes instead,
            ``(params, in_shape) -> (modules, out_shape)``, and a genome holding
            it keeps an image input as ``(channels, height, width)``; raise
            :class:`ShapeError` saying what would fit when ``in_shape`` cannot.
        replace: Whether a different registration under ``name`` may be replaced.
        shape_aware: Whether ``build`` works on shapes (see ``build``).

    Returns:
        The registered :class:`LayerType`.

    Raises:
        ValueError: If ``name`` is empty or not a string, or is registered with
            another definition and ``replace`` is False.
        TypeError: If ``build`` is not callable, a spec is not a ParamSpec or
            ``replace`` or ``shape_aware`` is not a bool.
    """
    if not isinstance(shape_aware, bool):
        raise TypeError(f"shape_aware must be a bool, got {describe(shape_aware)}")
    return _register(
        LayerType(
            name,
            _checked_specs(name, params, build, replace),
            build,
            shape_aware,
            needs_image=shape_aware,
        ),
        replace=replace,
    )


def _checked_specs(name: Any, params: Any, build: Any, replace: Any) -> tuple[ParamSpec, ...]:
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {describe(name)}")
    if not callable(build):
        raise TypeError(f"build must be callable, got {describe(build)}")
    if isinstance(params, (str, bytes)) or not isinstance(params, Iterable):
        raise TypeError(f"params must be a list of ParamSpec, got {describe(params)}")
    specs = tuple(params)  # once: a generator read twice would register no params
    for index, spec in enumerate(specs):
        if not isinstance(spec, ParamSpec):
            raise TypeError(f"params[{index}] must be a ParamSpec, got {describe(spec)}")
    if not isinstance(replace, bool):
        raise TypeError(f"replace must be a bool, got {describe(replace)}")
    return specs


def _register(registered: LayerType, *, replace: bool) -> LayerType:
    name = registered.name
    with _registry_lock:
        old = _registry.get(name)
        if old is not None and not replace:
            if same_registration(old, registered):
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


def is_builtin(kind: LayerType) -> bool:
    """Whether ``kind`` is one of the library's own types (every process has them)."""
    return kind.build.__module__ in (builtin_layers.__name__, seeded_dropout.__name__)


def layer_type(name: str) -> LayerType:
    """The registered type ``name``.

    Raises:
        KeyError: naming the type and the known ones.
    """
    found = _registered(name)
    if found is None:
        raise KeyError(f"unknown layer type {name!r}; known: {sorted(layer_types())}")
    return found


def _registered(name: Any) -> LayerType | None:
    """The type registered as ``name``, or None (a name that is not a str included)."""
    if not isinstance(name, str):
        return None
    with _registry_lock:
        return _registry.get(name)


def _builtin(
    name: str,
    params: Sequence[ParamSpec],
    build: LayerBuilder,
    shape_rule: ShapeRule,
    macs_rule: MacsRule = builtin_layers.no_macs,
    *,
    needs_image: bool = False,
) -> None:
    _register(
        LayerType(name, tuple(params), build, True, needs_image, shape_rule, macs_rule),
        replace=False,
    )


_builtin(
    "dense",
    [UNITS, ACTIVATION],
    builtin_layers.build_dense,
    builtin_layers.dense_shape,
    builtin_layers.dense_macs,
)
_builtin("activation", [ACTIVATION], builtin_layers.build_activation, builtin_layers.same_shape)
_builtin("dropout", [RATE], seeded_dropout.build_dropout, builtin_layers.same_shape)
_builtin("batch_norm", [], builtin_layers.build_batch_norm, builtin_layers.same_shape)
_builtin("leaky_relu", [ALPHA], builtin_layers.build_leaky_relu, builtin_layers.same_shape)
_builtin("flatten", [], builtin_layers.build_flatten, builtin_layers.flat_shape)
_builtin(
    "conv2d",
    [CHANNELS, KERNEL_SIZE, ACTIVATION],
    builtin_layers.build_conv2d,
    builtin_layers.conv2d_shape,
    builtin_layers.conv2d_macs,
    needs_image=True,
)
for _pool in ("max_pool", "avg_pool"):
    _builtin(
        _pool,
        [POOL_SIZE],
        builtin_layers.build_pool(_pool),
        builtin_layers.pool_shape,
        needs_image=True,
    )


def _layer_problem(index: int, layer: Any) -> str | None:
    """Describes what is wrong with ``layer`` at ``index``, or None if it is valid."""
    where = f"layers[{index}]"
    if not isinstance(layer, (tuple, list)) or len(layer) != 2:
        return f"{where} must be a (type, params) pair, got {describe(layer)}"
    type_name, params = layer
    kind = _registered(type_name)
    if kind is None:
        known = sorted(layer_types())
        return f"{where}: unknown layer type {describe(type_name)}; known: {known}"
    where = f"{where} ({type_name!r})"
    if not isinstance(params, (list, tuple)):
        return f"{where}: params must be a list, got {describe(params)}"
    spec = kind.params
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


def validate(layers: Any, input_shape: Sequence[int] | None = None) -> list[Layer]:
    """Checks a genome and returns a normalised copy.

    Args:
        layers: A list of ``(type, params)`` pairs.
        input_shape: Shape of one input sample, e.g. ``(1, 28, 28)``. Given, every
            layer must fit the shape reaching it (a pool needs pixels, a
            convolution an image). Without it, only what no shape could fix is
            checked: a convolution or pool after a layer that flattened.

    Returns:
        A new list of ``(type, list(params))`` tuples; the input is not modified.

    Raises:
        ValueError: naming the layer index, type and offending value of the
            first problem found; a :class:`ShapeError` (a ValueError) when a
            layer cannot take the shape reaching it, saying what would fit.
    """
    if isinstance(layers, (str, bytes)) or not isinstance(layers, (list, tuple)):
        raise ValueError(f"layers must be a list of (type, params) pairs, got {describe(layers)}")
    for index, layer in enumerate(layers):
        problem = _layer_problem(index, layer)
        if problem is not None:
            raise ValueError(problem)
    checked: list[Layer] = [(type_name, list(params)) for type_name, params in layers]
    if input_shape is None:
        _check_image_order(checked)
    else:
        layer_shapes(checked, input_shape)
    return checked


def _check_image_order(layers: Genome) -> None:
    """Refuses a layer that needs an image after one that made the input flat."""
    flattened_by = None
    for index, (type_name, _) in enumerate(layers):
        kind = layer_type(type_name)
        if kind.needs_image and flattened_by is not None:
            raise ShapeError(
                f"layers[{index}] ({type_name!r}): needs an image (channels, height, width) "
                f"coming in, but layers[{flattened_by}] ({layers[flattened_by][0]!r}) made it "
                f"flat; place it before layer {flattened_by}"
            )
        if flattened_by is None and (not kind.shape_aware or type_name in ("dense", "flatten")):
            flattened_by = index


def entry_shape(layers: Genome, input_shape: Sequence[int]) -> Shape:
    """The shape a genome's first layer sees.

    A genome holding a layer that needs an image (a convolution, a pool, a
    shape-aware user type) gets the sample as ``(channels, height, width)``;
    ``(height, width)`` becomes one channel. Any other genome gets it flat, as
    networks always did.
    """
    shape = tuple(int(size) for size in input_shape)
    wants_image = any(layer_type(type_name).needs_image for type_name, _ in layers)
    if wants_image and len(shape) == 2:
        return (1, *shape)
    if wants_image and len(shape) == 3:
        return shape
    return (math.prod(shape),)


def layer_shapes(layers: Genome, input_shape: Sequence[int]) -> list[Shape]:
    """The shape entering each layer, then the shape leaving the last one.

    Args:
        layers: A genome whose params are valid.
        input_shape: Shape of one input sample.

    Raises:
        ShapeError: naming the first layer that cannot take its input's shape,
            what reaches it, and what would fit.
    """
    shape = entry_shape(layers, input_shape)
    shapes = [shape]
    flattened_by: int | None = None
    for index, (type_name, params) in enumerate(layers):
        try:
            shape = layer_type(type_name).output_shape(params, shape)
        except ShapeError as error:
            raise ShapeError(
                f"layers[{index}] ({type_name!r}, {list(params)!r}): {error}"
                + _why_flat(layers, input_shape, flattened_by)
            ) from None
        if flattened_by is None and len(shapes[-1]) > 1 and len(shape) == 1:
            flattened_by = index
        shapes.append(shape)
    return shapes


def _why_flat(layers: Genome, input_shape: Sequence[int], flattened_by: int | None) -> str:
    if flattened_by is not None:
        return (
            f"; layers[{flattened_by}] ({layers[flattened_by][0]!r}) made it flat: "
            f"place it before layer {flattened_by}"
        )
    if len(tuple(input_shape)) not in (2, 3):
        return (
            f"; this task's samples are flat, {tuple(input_shape)}: convolutions and pools "
            "need image data, (channels, height, width) or (height, width)"
        )
    return ""


def macs(layers: Genome, input_shape: Sequence[int], n_classes: int) -> int:
    """Multiply-adds per sample of the compiled network's forward pass, head included.

    Raises:
        ShapeError: as :func:`layer_shapes`.
    """
    shapes = layer_shapes(layers, input_shape)
    total = sum(
        layer_type(type_name).macs(params, shapes[index], shapes[index + 1])
        for index, (type_name, params) in enumerate(layers)
    )
    return total + math.prod(shapes[-1]) * n_classes


def complexity(layers: Genome) -> int:
    """The seed's complexity measure: the number of layers."""
    return len(layers)


def build_layer(layer: Layer, in_shape: Shape) -> tuple[list[nn.Module], Shape]:
    """Builds the modules of one validated layer given the shape coming in."""
    type_name, params = layer
    return layer_type(type_name).build_for(params, in_shape)
