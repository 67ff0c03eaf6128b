"""The stacked model's building blocks: per-member initialisation and batched operations.

Shared by :mod:`~galapagos_nao.core.stacked` (and the convolution slots): each
function works on tensors with a leading population axis ``P``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional

from galapagos_nao.core import counter_rng
from galapagos_nao.core.group_leaves import Leaf

__all__ = [
    "BMM_ON_CPU",
    "AddBias",
    "activate",
    "linear",
    "linear_parameters",
    "member_linears",
    "ones_column",
    "per_member",
    "per_member_sum",
    "resized",
    "width_mask",
]

#: Whether the CPU runs a group's dense products as batched ``bmm`` (the form other
#: devices run) rather than one ``addmm`` per member (see :func:`member_linears`).
BMM_ON_CPU = False

_ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": functional.softplus,
}


def per_member(values: list[float], device: torch.device) -> torch.Tensor:
    """``(P, 1, 1)`` float32 tensor of one value per member."""
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)


def linear_parameters(
    keys: torch.Tensor,
    leaves: tuple[Leaf | None, ...],
    ins: list[int],
    outs: list[int],
    pads: tuple[int, int],
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear slot's weights drawn as ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, torch's default.

    Each value is the member's hash of (its layer's position, its row and
    column in the member's own weight): the same alone and in any group.
    """
    width_in, width_out = pads
    ordinals = torch.tensor([leaf.ordinal if leaf else 0 for leaf in leaves], device=device)
    fan_in = torch.tensor(ins, device=device).view(-1, 1, 1)
    real_out = torch.tensor(outs, device=device).view(-1, 1, 1)
    present = torch.tensor([leaf is not None for leaf in leaves], device=device)
    # float32(1 / sqrt(fan_in)) from a double, as torch's uniform_(-limit, limit) takes it
    limit = per_member([1.0 / math.sqrt(n) for n in ins], device)
    rows = torch.arange(width_out, device=device).view(1, -1, 1)
    cols = torch.arange(width_in, device=device).view(1, 1, -1)
    weight_keys = counter_rng.stream_keys(keys, counter_rng.INIT_WEIGHT, ordinals)
    draw = counter_rng.uniform(weight_keys, rows * fan_in + cols)
    real = (rows < real_out) & (cols < fan_in) & present.view(-1, 1, 1)
    weight = torch.where(real, (draw * 2.0 - 1.0) * limit, 0.0)
    bias_keys = counter_rng.stream_keys(keys, counter_rng.INIT_BIAS, ordinals)
    units = torch.arange(width_out, device=device).view(1, -1)
    draw = counter_rng.uniform(bias_keys, units)  # (P, width_out)
    real = (units < real_out[:, 0]) & present.view(-1, 1)
    bias = torch.where(real, (draw * 2.0 - 1.0) * limit[:, 0], 0.0)
    return weight, bias


def linear(
    x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor, ones: torch.Tensor | None = None
) -> torch.Tensor:
    """``x @ weight + bias`` per member: ``(P, batch, in) -> (P, batch, out)``.

    Args:
        x: The members' rows.
        weight_t: ``(P, in, out)``: each member's weight stored transposed, so that
            the product's weight gradient comes out in the parameter's own layout
            (a ``(P, out, in)`` weight used as ``.transpose(1, 2)`` would get its
            gradient transposed, and a contiguous copy of it every step).
        bias: ``(P, 1, out)``.
        ones: :func:`ones_column` of ``x``, if the caller keeps one.

    The bias enters as the product of a column of ones by it, to which the
    batched product adds ``x @ weight``: its gradient is then the product of
    the ones by the output's gradient, each member's rows summed alone in one
    fused kernel, the same bits for any ``P`` (autograd's reduction of a
    broadcast add rounds by ``P``; see :class:`AddBias`).
    """
    if ones is None:
        ones = ones_column(x)
    return torch.baddbmm(torch.bmm(ones, bias), x, weight_t)


def member_linears(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T + bias`` as one ``addmm`` per member, ``nn.Linear``'s own kernels.

    Args:
        x: ``(P, batch, in)`` the members' rows.
        weight: ``(P, out, in)``: each member's weight in ``nn.Linear``'s layout,
            so its gradient comes out in that layout too (autograd computes a
            transposed operand's gradient as the transposed product); or
            ``(out, in)`` for a model of one member, which then runs the very
            calls ``nn.Linear`` makes, with no views to take and undo.
        bias: ``(P, out)``, or ``(out,)`` with a ``(out, in)`` weight.

    The CPU's form: on two cores a loop of plain products is as fast as one
    batched product for the group sizes the CPU trains, and faster for one
    member, which is how the CPU trains by default (the bias is added inside
    the product, and no ones column or per-member sum is needed). Each member's
    bits are those of its product alone, whatever the group.
    """
    if weight.dim() == 2:  # a member alone, whose parameters are stored as nn.Linear's
        # one call: linear folds (1, batch) into the rows of that same addmm
        return functional.linear(x, weight, bias)
    products = [
        torch.addmm(b, rows, w.t())
        for rows, w, b in zip(x.unbind(0), weight.unbind(0), bias.unbind(0), strict=True)
    ]
    return torch.stack(products)


def ones_column(x: torch.Tensor) -> torch.Tensor:
    """``(P, batch, 1)`` ones of ``x``'s type for :func:`linear`, a transposed ``(P, 1, batch)``.

    Autograd's product for the bias gradient then multiplies the contiguous row
    (as :func:`per_member_sum` does); a contiguous ``(P, batch, 1)`` column would
    reach it as a transposed view, which the batched product treats differently
    for one member than for several.
    """
    return x.new_ones(x.shape[0], 1, x.shape[1]).mT


def activate(name: str, slope: float, x: torch.Tensor) -> torch.Tensor:
    """Activation ``name`` (with ``slope`` for a leaky ReLU) of ``x``."""
    if name == "leaky_relu":
        return functional.leaky_relu(x, slope)
    return _ACTIVATIONS[name](x)


class AddBias(torch.autograd.Function):
    """``x + bias`` per member, whose bias gradient is a batched product over the rows.

    Autograd's own gradient of a broadcast add sums ``(P, batch, units)`` over
    the batch with a reduction whose rounding depends on ``P`` (a group of one
    is reduced as one flat block): a product sums each member's rows alone.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x + bias.unsqueeze(1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        return grad, per_member_sum(grad)


def per_member_sum(values: torch.Tensor) -> torch.Tensor:
    """``(P, rows, n) -> (P, n)``: each member's sum over its rows, the same bits for any ``P``."""
    ones = values.new_ones(values.shape[0], 1, values.shape[1])
    return torch.bmm(ones, values).squeeze(1)


def resized(x: torch.Tensor, width: int, dim: int = -1) -> torch.Tensor:
    """``x`` cut or zero-extended to ``width`` along ``dim`` (a member passing a slot through)."""
    have = x.shape[dim]
    if have == width:
        return x
    if have > width:
        return x.narrow(dim, 0, width)
    if dim == -1:
        return functional.pad(x, (0, width - have))
    shape = list(x.shape)
    shape[dim] = width - have
    return torch.cat([x, x.new_zeros(shape)], dim)


def width_mask(widths: tuple[int, ...], padded: int, device: torch.device) -> torch.Tensor:
    """``(P, 1, padded)`` float32: ones on each member's ``widths`` real units, zeros after."""
    units = torch.arange(padded, device=device).view(1, 1, -1)
    real = torch.tensor(widths, device=device).view(-1, 1, 1)
    return (units < real).to(torch.float32)
