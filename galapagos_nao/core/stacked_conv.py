"""The stacked model's image operations: convolutions, pools, reshape and flatten.

Images travel as ``(P, batch, channels, height, width)``: member ``m``'s batch
is ``x[m]``, a plain ``(batch, C, H, W)`` image batch. Channels are padded to
the slot's widest member with exact zeros, as dense widths are: a padded output
channel has zero weights and bias, and a padded input channel is zero, so
neither ever gets a gradient.

How the members' convolutions run (:data:`GROUPED_ON_CPU`): as one grouped
convolution over the population axis (``groups=P``), as ``torch.func.vmap`` of
``conv2d``, or as one ``conv2d`` per member. ``python -m benchmarks.conv_forms``
on this 2-core machine (shared, so figures swing by tens of percent), batch
128, one intra-op thread, forward and backward (no input gradient for the
first convolution), CPU ms per member, median of 7 with the forms taking
turns; "diff": some member's output or gradient differs from its convolution
alone:

=======================  ==  ============  ===========  =====
shape (Cin→Cout, k, px)  P   grouped       vmap         loop
=======================  ==  ============  ===========  =====
1→16, 3, 28×28           1   11.8          13.0 diff     5.8
16→32, 3, 14×14          1    7.9           9.2 diff     8.1
16→16, 5, 14×14          1    8.5           9.5 diff     8.7
1→16, 3, 28×28           4    8.1 diff      9.0 diff     6.0
16→32, 3, 14×14          4   16.1          16.1 diff    11.4
16→16, 5, 14×14          4    9.4          10.0 diff    10.5
1→16, 3, 28×28           8   15.7 diff     18.7 diff    14.6
16→32, 3, 14×14          8   13.2          13.9 diff    13.3
16→16, 5, 14×14          8   12.9          13.2 diff    12.8
=======================  ==  ============  ===========  =====

The loop was the fastest or within 12% of the fastest in every row, vmap never
the fastest, and only the loop gives each member its bits alone (vmap differs
even for one member: it adds the bias apart; the grouped form differs on the
one-channel input). So the CPU runs one
``conv2d`` per member (a group of one is exactly a plain convolution); other
devices run the grouped convolution, one kernel for the whole group.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional

from galapagos_nao.core import counter_rng
from galapagos_nao.core.group_leaves import CANONICAL, Leaf, canonical

__all__ = [
    "GROUPED_ON_CPU",
    "conv",
    "conv_parameters",
    "conv_weight",
    "flatten",
    "grouped_conv",
    "member_conv_weight",
    "member_convs",
    "pool",
    "reshape",
    "stored_lanes",
]

#: Whether the CPU runs a group's convolutions as one grouped convolution (see the
#: module doc: it is no faster there, and not the same bits as alone).
GROUPED_ON_CPU = False


def conv_parameters(
    keys: torch.Tensor,
    leaves: tuple[Leaf | None, ...],
    ins: list[int],
    outs: list[int],
    pads: tuple[int, int],
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A convolution slot's weights ``(P, Cout, lanes)`` and biases ``(P, lanes)``.

    Each member's values are torch's default ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
    with ``fan_in = Cin × k²``, the hash of (its layer's position, the value's
    index in the member's own ``(Cout, Cin, k, k)`` weight): what
    :func:`~galapagos_nao.core.training.counter_init` gives the layer alone.

    The kernel of an output channel is stored flat: ``Cin × k²`` values, rounded
    up to :data:`~galapagos_nao.core.group_leaves.CANONICAL` lanes where a
    member's ``Cout × Cin × k²`` values are not a whole number of lanes (the
    biases likewise), so that each member's values sit in the same vector lanes
    of the optimizer's element-wise loops alone and in a group. Where they are
    (most shapes: 16 channels of 3×3), nothing is padded and the stored weight
    is the convolution's own.
    """
    width_in, width_out = pads
    k = next(leaf for leaf in leaves if leaf is not None).detail[0]
    taps = k * k
    ordinals = torch.tensor([leaf.ordinal if leaf else 0 for leaf in leaves], device=device)
    present = torch.tensor([leaf is not None for leaf in leaves], device=device).view(-1, 1, 1)
    fan_in = torch.tensor(ins, device=device).view(-1, 1, 1)
    real_out = torch.tensor(outs, device=device).view(-1, 1, 1)
    # float32(1 / sqrt(fan_in)) from a double, as torch's uniform_(-limit, limit) takes it
    limit = torch.tensor(
        [1.0 / math.sqrt(n * taps) for n in ins], dtype=torch.float32, device=device
    ).view(-1, 1, 1)
    rows = torch.arange(width_out, device=device).view(1, -1, 1)
    lanes = torch.arange(stored_lanes(width_in * taps, width_out), device=device).view(1, 1, -1)
    channel, tap = lanes // taps, lanes % taps
    index = (rows * fan_in + channel) * taps + tap  # in the member's own weight
    draw = counter_rng.uniform(
        counter_rng.stream_keys(keys, counter_rng.INIT_WEIGHT, ordinals), index
    )
    real = (rows < real_out) & (channel < fan_in) & present
    weight = torch.where(real, (draw * 2.0 - 1.0) * limit, 0.0)
    units = torch.arange(canonical(width_out), device=device).view(1, 1, -1)
    draw = counter_rng.uniform(
        counter_rng.stream_keys(keys, counter_rng.INIT_BIAS, ordinals), units
    )
    bias = torch.where((units < real_out) & present, (draw * 2.0 - 1.0) * limit, 0.0)
    return weight, bias[:, 0]


def stored_lanes(fan_in: int, channels_out: int) -> int:
    """Stored values per output channel: ``fan_in``, or rounded up to whole lanes per member."""
    return fan_in if fan_in * channels_out % CANONICAL == 0 else canonical(fan_in)


def conv_weight(stored: torch.Tensor, channels_in: int, kernel: int) -> torch.Tensor:
    """``(P, Cout, Cin, k, k)``: the kernels of :func:`conv_parameters`' stored weights."""
    return stored[..., : channels_in * kernel * kernel].unflatten(-1, (channels_in, kernel, kernel))


def member_conv_weight(stored: torch.Tensor, leaf: Leaf, channels_in: int) -> torch.Tensor:
    """A view of one member's own ``(Cout, Cin, k, k)`` weight in its stored ``(Cout, lanes)``."""
    kernel = leaf.detail[0]
    return conv_weight(stored[: leaf.width_out], channels_in, kernel)[:, : leaf.width_in]


def conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Each member's "same" convolution: ``(P, B, Cin, H, W) -> (P, B, Cout, H, W)``.

    Args:
        x: The members' images.
        weight: ``(P, Cout, Cin, k, k)`` (:func:`conv_weight`).
        bias: ``(P, lanes)``, of which the first ``Cout`` are used.
    """
    bias = bias[:, : weight.shape[1]]
    if x.device.type == "cpu" and not GROUPED_ON_CPU:
        return member_convs(x, weight, bias)  # each member's bits alone (see the module doc)
    return grouped_conv(x, weight, bias)


def member_convs(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """:func:`conv` as one ``conv2d`` per member (``bias`` ``(P, Cout)``)."""
    padding = weight.shape[-1] // 2
    found = [functional.conv2d(x[m], weight[m], bias[m], padding=padding) for m in range(len(x))]
    return found[0].unsqueeze(0) if len(found) == 1 else torch.stack(found)


def grouped_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """:func:`conv` as one convolution with ``groups=P`` (``bias`` ``(P, Cout)``)."""
    size, batch, channels, height, width = x.shape
    out_channels, kernel = weight.shape[1], weight.shape[-1]
    images = x.transpose(0, 1).reshape(batch, size * channels, height, width)
    y = functional.conv2d(
        images,
        weight.reshape(size * out_channels, channels, kernel, kernel),
        bias.reshape(-1),
        padding=kernel // 2,
        groups=size,
    )
    return y.view(batch, size, out_channels, height, width).transpose(0, 1)


def pool(kind: str, size: int, x: torch.Tensor) -> torch.Tensor:
    """A max or average pool of window and stride ``size`` on every member's images."""
    images = x.flatten(0, 1)
    if kind == "max_pool":
        pooled = functional.max_pool2d(images, size)
    else:
        pooled = functional.avg_pool2d(images, size)
    return pooled.unflatten(0, x.shape[:2])


def reshape(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Rows ``(P, B, features)`` (maybe zero-padded) as images ``(P, B, C, H, W)``."""
    return x[..., : math.prod(shape)].unflatten(-1, shape)


def flatten(x: torch.Tensor, width: int) -> torch.Tensor:
    """Images ``(P, B, C, H, W)`` as rows of ``width`` features, zero-padded.

    Channels come first, so each member's real features are a prefix of its
    row, as the dense slots after it expect.
    """
    rows = x.flatten(2)
    if rows.shape[-1] < width:
        rows = functional.pad(rows, (0, width - rows.shape[-1]))
    return rows
