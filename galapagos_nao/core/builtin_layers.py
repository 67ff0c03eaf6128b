"""The built-in layer types' builders and shape rules, images included.

``("conv2d", [channels, kernel_size, activation])`` is a stride-1 convolution
with "same" padding, so only its channels change the shape;
``("max_pool", [size])`` and ``("avg_pool", [size])`` shrink height and width by
``size`` (their stride). They need an image coming in, ``(channels, height,
width)``: a genome places them before anything that flattens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from galapagos_nao.core.layer_spec import (
    Shape,
    ShapeError,
    activation_module,
    describe_shape,
    is_image,
)

__all__ = [
    "FlatLinear",
    "InputReshape",
    "build_activation",
    "build_batch_norm",
    "build_dense",
    "build_flatten",
    "build_leaky_relu",
    "dense_macs",
    "flat_shape",
    "no_macs",
    "same_shape",
    "build_conv2d",
    "build_pool",
    "conv2d_macs",
    "conv2d_shape",
    "dense_shape",
    "pool_shape",
]


class InputReshape(nn.Module):
    """Gives each sample the shape the first layer sees: flat, or ``(C, H, W)``.

    Inputs arrive as users hold them, ``(N, 28, 28)``, ``(N, 1, 28, 28)`` or
    ``(N, 784)`` for MNIST; all hold the same numbers in the same order.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:  # noqa: D102
        return f"shape={self.shape}"


class FlatLinear(nn.Linear):
    """A linear layer that flattens an image coming in.

    A dense layer after a convolution sees ``(batch, C, H, W)``; flattening
    inside the layer (instead of a separate module) keeps its weights named
    ``layerN.0.weight`` wherever it stands, which weight inheritance relies on.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return super().forward(x.flatten(1))


def _needs_image(kind: str, params: Sequence[Any], in_shape: Shape) -> None:
    if not is_image(in_shape):
        raise ShapeError(
            f"a {kind} needs an image (channels, height, width) coming in, but it gets "
            f"{describe_shape(in_shape)}"
        )


def conv2d_shape(params: Sequence[Any], in_shape: Shape) -> Shape:
    """``(C, H, W) -> (channels, H, W)``: stride 1 and "same" padding keep the size."""
    _needs_image("convolution", params, in_shape)
    channels = params[0]
    return (channels, in_shape[1], in_shape[2])


def build_conv2d(params: Sequence[Any], in_shape: Shape) -> tuple[list[nn.Module], Shape]:
    """``Conv2d(C, channels, kernel_size, padding=kernel_size // 2)`` and its activation."""
    channels, kernel_size, activation = params
    out_shape = conv2d_shape(params, in_shape)
    conv = nn.Conv2d(in_shape[0], channels, kernel_size, padding=kernel_size // 2)
    return [conv, *activation_module(activation)], out_shape


def conv2d_macs(params: Sequence[Any], in_shape: Shape, out_shape: Shape) -> int:
    """Multiply-adds of a convolution: one kernel window per output element."""
    kernel_size = params[1]
    return math.prod(out_shape) * in_shape[0] * kernel_size * kernel_size


def pool_shape(params: Sequence[Any], in_shape: Shape) -> Shape:
    """``(C, H, W) -> (C, H // size, W // size)``; refuses a window larger than the image."""
    _needs_image("pooling layer", params, in_shape)
    size = params[0]
    channels, height, width = in_shape
    if height < size or width < size:
        raise ShapeError(
            f"pooling {height}×{width} pixels by {size} leaves less than one pixel; "
            f"a pool of {size} needs at least {size}×{size} coming in: remove it or place it "
            "before an earlier pool"
        )
    return (channels, height // size, width // size)


def build_pool(kind: str) -> Any:
    """The builder of a ``max_pool`` or ``avg_pool`` layer: window = stride = ``size``."""
    module = {"max_pool": nn.MaxPool2d, "avg_pool": nn.AvgPool2d}[kind]

    def build(params: Sequence[Any], in_shape: Shape) -> tuple[list[nn.Module], Shape]:
        out_shape = pool_shape(params, in_shape)
        return [module(params[0])], out_shape

    build.__qualname__ = f"build_{kind}"
    return build


def dense_shape(params: Sequence[Any], in_shape: Shape) -> Shape:
    """Any shape -> ``(units,)``: a dense layer flattens what it gets."""
    return (params[0],)


def build_dense(params: Sequence[Any], in_shape: Shape) -> tuple[list[nn.Module], Shape]:
    """``Linear(features, units)`` and its activation; flattens an image coming in."""
    units, activation = params
    features = math.prod(in_shape)
    # On an image the layer flattens inside itself, so its weights keep their names.
    linear = FlatLinear(features, units) if len(in_shape) > 1 else nn.Linear(features, units)
    return [linear, *activation_module(activation)], (units,)


def same_shape(params: Sequence[Any], in_shape: Shape) -> Shape:
    """Layers that work element-wise keep the shape."""
    return in_shape


def build_activation(params: Sequence[Any], in_shape: Shape) -> tuple[list[nn.Module], Shape]:
    """The activation's module (none for ``"none"``)."""
    return activation_module(params[0]), in_shape


def build_batch_norm(params: Sequence[Any], in_shape: Shape) -> tuple[list[nn.Module], Shape]:
    """Batch norm per channel on an image, per feature on a flat input."""
    norm = nn.BatchNorm2d(in_shape[0]) if is_image(in_shape) else nn.BatchNorm1d(in_shape[0])
    return [norm], in_shape


def build_leaky_relu(params: Sequence[Any], in_shape: Shape) -> tuple[list[nn.Module], Shape]:
    """``LeakyReLU(alpha)``."""
    return [nn.LeakyReLU(float(params[0]))], in_shape


def flat_shape(params: Sequence[Any], in_shape: Shape) -> Shape:
    """Any shape -> ``(features,)``."""
    return (math.prod(in_shape),)


def build_flatten(params: Sequence[Any], in_shape: Shape) -> tuple[list[nn.Module], Shape]:
    """Turns an image into features (a no-op on a flat input)."""
    # On a network that flattens its input up front this is a no-op, kept for
    # the seed's genomes; after convolutions it turns the image into features.
    return [nn.Flatten()], flat_shape(params, in_shape)


def no_macs(params: Sequence[Any], in_shape: Shape, out_shape: Shape) -> int:
    """Layers without weights count no multiply-adds."""
    return 0


def dense_macs(params: Sequence[Any], in_shape: Shape, out_shape: Shape) -> int:
    """``features × units``."""
    return math.prod(in_shape) * params[0]
