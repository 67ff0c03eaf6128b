"""The one gate for network records: what a stored record must be, checked on write and on read.

A record that is written (``Library.put``, a checkpoint, ``Selection.put`` and
``put_unevaluated``, ``net.save``) must read back in every later session, so
writers and readers run the same checks, from here:

- :func:`check_metrics`: accuracies are numbers in ``[0, 1]``, the loss a finite
  number ``>= 0``, counts ints ``>= 0``, mutations strings (a NaN fitness would
  win or lose every comparison; ``"0.9"`` would fail the first one);
- :func:`check_size`: the genome's length and the input's features within
  :data:`MAX_LAYERS` and :data:`MAX_PARAMETERS`, before anything is built;
- :func:`shapes_and_count`: the state dict shapes the genome compiles to and its
  trainable parameter count, found on the ``meta`` device (no memory);
- :func:`check_fit`: the weights are exactly those tensors, in a dtype a file holds;
- :func:`check_total`: all of them within :data:`MAX_PARAMETERS`;
- :func:`check_parameter_count`: ``n_params`` is the recomputed count, never trusted.

:func:`check_record` runs them all on a :class:`~galapagos_nao.core.network.Network`
and is what every writer calls. Each raises ``ValueError`` naming the field; the
file reader (:mod:`galapagos_nao.store.codec`) reports the same message as damage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from galapagos_nao.core import genome
from galapagos_nao.core.checks import describe
from galapagos_nao.core.compiled_shapes import state_shapes
from galapagos_nao.core.ids import check_id
from galapagos_nao.core.network import Network

__all__ = [
    "ACCURACIES",
    "MAX_LAYERS",
    "MAX_PARAMETERS",
    "STORED_DTYPES",
    "check_fit",
    "check_metrics",
    "check_parameter_count",
    "check_record",
    "check_size",
    "check_total",
    "shapes_and_count",
]

#: Most numbers (parameters and buffers) a stored network may hold: 2**27, 512 MiB of
#: float32. MNIST networks of this library hold well under a million.
MAX_PARAMETERS = 2**27
#: Most layers a stored genome may have (each one is built, on no device, to check shapes).
MAX_LAYERS = genome.MAX_LAYERS
#: Metrics that are fractions of samples: a number in [0, 1] or None.
ACCURACIES = ("test_acc", "val_acc", "train_acc")
#: The tensor dtypes a network file holds (safetensors' names), by torch dtype.
STORED_DTYPES: dict[torch.dtype, str] = {
    torch.bool: "BOOL",
    torch.uint8: "U8",
    torch.int8: "I8",
    torch.int16: "I16",
    torch.uint16: "U16",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int32: "I32",
    torch.uint32: "U32",
    torch.float32: "F32",
    torch.int64: "I64",
    torch.uint64: "U64",
    torch.float64: "F64",
}


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def check_metrics(fields: Mapping[str, Any]) -> None:
    """Metrics the archive can rank and a file can hold.

    Args:
        fields: The record's ``test_acc``, ``val_acc``, ``train_acc``, ``loss``,
            ``n_params``, ``generation`` and ``mutations``.

    Raises:
        ValueError: naming the first field that is not what a record holds.
    """
    for name in ACCURACIES:
        value = fields[name]
        if value is not None and not (_number(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"{name} must be a number in [0, 1], got {describe(value)}")
    loss = fields["loss"]
    if loss is not None and not (_number(loss) and math.isfinite(loss) and loss >= 0):
        raise ValueError(f"loss must be a finite number >= 0, got {describe(loss)}")
    for name in ("n_params", "generation"):
        value = fields[name]
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"{name} must be an int or None, got {describe(value)}")
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0, got {describe(value)}")
    if not all(isinstance(text, str) for text in fields["mutations"]):
        raise ValueError(
            f"mutations must be a list of str, got {describe(list(fields['mutations']))}"
        )


def check_size(n_layers: int, input_shape: Sequence[Any]) -> None:
    """Refuses a genome or an input too large to build, before anything is built.

    Raises:
        ValueError: naming ``layers`` or ``input_shape`` and the limit.
    """
    if n_layers > MAX_LAYERS:
        raise ValueError(f"the genome has {n_layers} layers, more than the limit of {MAX_LAYERS}")
    if all(_number(size) for size in input_shape) and math.prod(input_shape) > MAX_PARAMETERS:
        raise ValueError(
            f"input_shape {describe(list(input_shape))} has more features than the limit of "
            f"{MAX_PARAMETERS}"
        )


def shapes_and_count(net: Network) -> tuple[dict[str, tuple[int, ...]], int]:
    """The state dict shapes ``net``'s genome compiles to, and its trainable parameter count.

    Read without building (:mod:`~galapagos_nao.core.compiled_shapes`), so a
    layer of a trillion units costs nothing.

    Raises:
        ValueError: if the genome or input is past :func:`check_size`'s limits
            or the genome cannot be built.
    """
    check_size(len(net.layers), net.input_shape)
    try:
        return state_shapes(net.layers, net.input_shape, net.n_classes)
    except (ValueError, TypeError, RuntimeError, OverflowError) as error:
        raise ValueError(f"the genome cannot be built: {error}") from None


def check_total(shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Refuses a genome that needs more than :data:`MAX_PARAMETERS` numbers in all.

    Raises:
        ValueError: naming the count and the limit.
    """
    numbers = sum(math.prod(shape) for shape in shapes.values())
    if numbers > MAX_PARAMETERS:
        raise ValueError(
            f"the genome needs {numbers} parameters and buffers, "
            f"more than the limit of {MAX_PARAMETERS}"
        )


def check_fit(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]
) -> None:
    """The weights' shapes must be exactly what the genome compiles to, or model() would fail.

    Raises:
        ValueError: naming the first missing, misshapen or extra tensor.
    """
    for name, shape in expected.items():
        if name not in found:
            raise ValueError(f"weights lack {name!r}, which the genome needs")
        if tuple(found[name]) != shape:
            raise ValueError(
                f"weight {name!r} has shape {tuple(found[name])}, the genome needs {shape}"
            )
    extra = sorted(set(found) - set(expected))
    if extra:
        raise ValueError(f"weights {extra} do not belong to the genome")


def check_parameter_count(claimed: Any, counted: int) -> None:
    """``n_params`` must be the genome's trainable parameter count (or None): it sizes cells.

    Raises:
        ValueError: naming ``n_params``, its value and the count.
    """
    if claimed is not None and claimed != counted:
        raise ValueError(
            f"n_params is {describe(claimed)} but the genome has {counted} trainable parameters"
        )


def _check_tensors(weights: Mapping[str, torch.Tensor]) -> None:
    for name, tensor in weights.items():
        if tensor.dtype not in STORED_DTYPES:
            raise ValueError(f"weights[{name!r}] has dtype {tensor.dtype}, which no file holds")
        if tensor.layout != torch.strided:
            raise ValueError(f"weights[{name!r}] is {tensor.layout}; files hold dense tensors")


def check_record(net: Any, name: str | None = None) -> Network:
    """Everything a reader checks, run on a record before it is written or kept.

    Args:
        net: The record.
        name: What the caller calls it (``"net"``, ``"elites[3]"``); messages
            then start with the name and the network's id.

    Returns:
        ``net``.

    Raises:
        ValueError: naming the field (``id``, ``val_acc``, ``layers``,
            ``weights['head.weight']``, ``n_params``, ...) that a later read
            would refuse; nothing has been written.
    """
    if not isinstance(net, Network):
        raise ValueError(f"{name or 'net'} must be a Network, got {describe(net)}")
    if name is None:
        return _check_fields(net)
    try:
        return _check_fields(net)
    except ValueError as error:
        raise ValueError(f"{name} {describe(net.id)}: {error}") from None


def _check_fields(net: Network) -> Network:
    check_id("id", net.id)
    if net.parent_id is not None:
        check_id("parent_id", net.parent_id)
    check_metrics(
        {name: getattr(net, name) for name in (*ACCURACIES, "loss", "n_params")}
        | {
            "generation": net.generation,
            "mutations": net.mutations,
        }
    )
    shapes, counted = shapes_and_count(net)
    if net.weights is not None:
        _check_tensors(net.weights)
        check_fit(shapes, {name: tuple(t.shape) for name, t in net.weights.items()})
    check_total(shapes)
    check_parameter_count(net.n_params, counted)
    return net
