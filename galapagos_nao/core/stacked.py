"""A group's networks as one stacked model: one forward for all members, any shapes.

The members' parameters are stacked along a leading population axis ``P``; one
forward pass runs all of them on activations of shape
``(P, batch, features)``, and on images ``(P, batch, channels, height, width)``
(convolutions and pools: :mod:`~galapagos_nao.core.stacked_conv`). The slots of
a :class:`~galapagos_nao.core.group_plan.GroupPlan` become the model's
operations; what varies per member is held as tensors:

- widths: each slot is padded to the group's widest (every flat width rounded up
  to :data:`~galapagos_nao.core.group_plan.CANONICAL` first, alone too). Padded
  weights see zero inputs and get zero gradients, so they stay exactly zero;
  after an activation that maps 0 elsewhere (sigmoid, softplus) the padded units
  are multiplied back to zero.
- depth: a member without a layer in a slot passes its input through
  (``torch.where``), and the slot's weights for it get no gradient;
- activation kinds and slopes, dropout rates: ``(P, 1, 1)`` tensors.

Every random draw (initial weights, dropout masks) is computed by
:mod:`~galapagos_nao.core.counter_rng` from the member's key, the step and the
layer's position in the member's own network, for all members at once.

How the dense products run: on the CPU one ``addmm`` per member, ``nn.Linear``'s
own calls (a member alone keeps ``nn.Linear``'s parameter shapes), which on two
cores is faster than one batched product for a member alone, the CPU's default;
elsewhere one ``bmm`` for the group (:data:`~galapagos_nao.core.stacked_ops.BMM_ON_CPU`,
as :mod:`~galapagos_nao.core.stacked_conv` does for convolutions). Either way a
member runs the same kernels alone and in any group, which is what makes its
arithmetic the same in a group; ``torch.func.vmap(functional_call)`` was not
used, as it rounds a member differently from the member alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from galapagos_nao.core import stacked_conv, stacked_ops
from galapagos_nao.core.group_plan import (
    ZERO_PRESERVING,
    GroupPlan,
    Leaf,
    padded_widths,
)
from galapagos_nao.core.stacked_conv import conv_parameters
from galapagos_nao.core.stacked_dropout import DropoutMasks, dropout_fields
from galapagos_nao.core.stacked_ops import (
    activate,
    linear,
    linear_parameters,
    member_linears,
    ones_column,
    per_member_sum,
    resized,
    width_mask,
)

__all__ = ["IMAGE_KINDS", "StackedModel", "per_member_sum"]

#: Slot kinds :mod:`~galapagos_nao.core.stacked_conv` computes.
IMAGE_KINDS = frozenset({"conv", "reshape", "flatten", "max_pool", "avg_pool"})


@dataclass(frozen=True, eq=False)
class _Slot:
    """One stacked operation and the per-member tensors it needs."""

    kind: str
    key: str  # prefix of its parameters on the module
    width_in: int  # padded
    width_out: int  # padded
    leaves: tuple[Leaf | None, ...]  # each member's leaf, None where it passes through
    widths_out: tuple[int, ...]  # each member's real features going out
    active: torch.Tensor | None = None  # (A,) members with a leaf; None when every member has one
    mask: torch.Tensor | None = None  # (P, 1, width_out) ones on real units, if needed
    # activation (kind, slope) -> its members (None: every member); the rest pass through
    kinds: tuple[tuple[str, float, torch.Tensor | None], ...] = ()
    rates: torch.Tensor | None = None  # (P, 1, 1) dropout rates (0 where it passes through)
    thresholds: torch.Tensor | None = None  # (P, 1, 1) int32 keep thresholds of the rates
    draws: bool = False  # whether some member drops anything (known up front: no device sync)
    drawing: torch.Tensor | None = None  # (D,) members that drop, when not all of them do
    real_widths: torch.Tensor | None = None  # (P, 1, 1) int32 each member's real units
    stream: torch.Tensor | None = None  # (P,) the dropout slot's random stream keys
    numbers: tuple[float, ...] = ()  # batch norm (eps, momentum)
    first: Leaf | None = None  # the first member's leaf: what the slot's leaves share


class StackedModel(nn.Module):
    """The members of a :class:`GroupPlan`, run as one model on ``(P, batch, features)``.

    Args:
        plan: The members' aligned leaves.
        input_features: Features of one sample (the rows arrive padded to the
            first slot's width).
        keys: ``(P,)`` member keys (:func:`counter_rng.member_keys`): the
            parameters are initialised from them, as each member alone would be.
        device: Where the stacked parameters live.

    Attributes:
        steps: Training forwards so far: the step word of each dropout draw, and
            each batch norm's ``num_batches_tracked``.
    """

    def __init__(
        self, plan: GroupPlan, input_features: int, keys: torch.Tensor, device: torch.device
    ) -> None:
        super().__init__()
        self.size = plan.size
        self.steps = 0
        self.input_width = padded_widths(plan, input_features)[0][0]
        self.n_classes = plan.members[0][-1].width_out
        self._keys = keys.to(device)
        # dense products as one addmm per member (the CPU) or one bmm for all
        self.member_loop = torch.device(device).type == "cpu" and not stacked_ops.BMM_ON_CPU
        # (member, batch norm prefix) -> batches it had counted before (inherited)
        self._counted_before: dict[tuple[int, str], int] = {}
        self._dropout_masks: dict[str, DropoutMasks] = {}  # by slot key, made on first use
        self._ones: dict[tuple[Any, ...], torch.Tensor] = {}  # see _ones_column
        self.slots: list[_Slot] = []
        pads = padded_widths(plan, input_features)
        with torch.no_grad():
            for index, (ins, outs) in enumerate(plan.widths(input_features)):
                leaves = tuple(plan.leaf(index, m) for m in range(self.size))
                self.slots.append(
                    self._slot(index, plan.kind(index), leaves, pads[index], ins, outs, device)
                )
        self.to(device)

    # -- construction ---------------------------------------------------------------

    def _slot(
        self,
        index: int,
        kind: str,
        leaves: tuple[Leaf | None, ...],
        pads: tuple[int, int],
        ins: list[int],
        outs: list[int],
        device: torch.device,
    ) -> _Slot:
        key = f"s{index}"
        width_in, width_out = pads
        present = [leaf is not None for leaf in leaves]
        active = None
        if not all(present):
            active = torch.tensor([m for m, p in enumerate(present) if p], device=device)
        first = next(leaf for leaf in leaves if leaf is not None)
        base = _Slot(kind, key, width_in, width_out, leaves, tuple(outs), active, first=first)
        if kind == "conv":
            weight, bias = conv_parameters(self._keys, leaves, ins, outs, pads, device)
            self.register_parameter(f"{key}_weight", nn.Parameter(weight))
            self.register_parameter(f"{key}_bias", nn.Parameter(bias))
            return base
        if kind in ("linear", "head"):
            weight, bias = linear_parameters(self._keys, leaves, ins, outs, pads, device)
            if not self.member_loop:  # stored (P, in, out) and (P, 1, out): see stacked_ops.linear
                weight, bias = weight.mT.contiguous(), bias.unsqueeze(1)
            elif self.size == 1:  # a candidate alone: nn.Linear's own (out, in) and (out,)
                weight, bias = weight[0], bias[0]
            self.register_parameter(f"{key}_weight", nn.Parameter(weight))
            self.register_parameter(f"{key}_bias", nn.Parameter(bias))
            return base
        if kind == "batch_norm":
            self._init_batch_norm(key, width_in)
            return dataclasses.replace(base, numbers=first.detail)
        if kind == "dropout":  # a member without a dropout here draws with rate 0: keeps all
            fields = dropout_fields(self._keys, leaves, outs, first.area_in, device)
            return dataclasses.replace(base, active=None, **fields)
        if kind in IMAGE_KINDS:
            return base  # a reshape, a pool or a flatten: every member has one
        # an activation: each member its own kind, the identity where it has none
        details = [leaf.detail if leaf is not None else ("identity", 0.0) for leaf in leaves]
        kinds = []
        for name, slope in sorted(set(details)):
            if name == "identity":
                continue
            members = [m for m, detail in enumerate(details) if detail == (name, slope)]
            chosen = None if len(members) == self.size else torch.tensor(members, device=device)
            kinds.append((name, slope, chosen))
        outs_real = tuple(outs)
        mask = None
        if any(not ZERO_PRESERVING[name] for name, _, _ in kinds) and min(outs) < width_out:
            mask = width_mask(outs_real, width_out, device)
            if first.spatial_in:  # (P, 1, channels, 1, 1)
                mask = mask.view(self.size, 1, width_out, 1, 1)
        return dataclasses.replace(base, active=None, kinds=tuple(kinds), mask=mask)

    def _init_batch_norm(self, key: str, width: int) -> None:
        """Torch's defaults, flattened to ``(P * width,)`` (one channel per member and unit)."""
        for part, fill in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0)):
            flat = torch.full((self.size * width,), fill)
            if part == "running_mean":
                self.register_buffer(f"{key}_{part}", flat)
            else:
                self.register_parameter(f"{key}_{part}", nn.Parameter(flat))
        self.register_buffer(f"{key}_running_var", torch.ones(self.size * width))

    # -- the forward pass -----------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(P, batch, classes)`` of rows ``(P, batch, input width)``.

        A view of the head's padded output: callers that need it contiguous copy it.
        """
        if self.training:
            self.steps += 1
        for slot in self.slots:
            if slot.active is None:
                y = self._run(slot, x, None)
            else:  # only the members with a leaf here compute; the others pass through
                part = self._run(slot, x.index_select(0, slot.active), slot.active)
                # (a convolution's members passing through: their channels, resized)
                y = resized(x, slot.width_out, 2 if x.dim() == 5 else -1)
                y = y.index_copy(0, slot.active, part)
            if slot.mask is not None:
                y = y * slot.mask  # padded units back to exactly zero (and no gradient)
            x = y
        return x[..., : self.n_classes]

    def _run(self, slot: _Slot, x: torch.Tensor, members: torch.Tensor | None) -> torch.Tensor:
        """The slot's operation on ``x``, the rows of ``members`` (None: every member)."""
        if slot.kind in ("linear", "head"):
            weight = getattr(self, f"{slot.key}_weight")
            bias = getattr(self, f"{slot.key}_bias")
            if members is not None:
                weight, bias = weight.index_select(0, members), bias.index_select(0, members)
            if self.member_loop:
                return member_linears(x, weight, bias)
            return linear(x, weight, bias, self._ones_column(x))
        if slot.kind in IMAGE_KINDS:
            return self._run_image(slot, x, members)
        if slot.kind == "batch_norm":
            if members is None:
                return self._batch_norm(slot, x)
            # every member's channels, so that the running statistics update in place
            whole = torch.zeros(self.size, *x.shape[1:], dtype=x.dtype, device=x.device).index_copy(
                0, members, x
            )
            return self._batch_norm(slot, whole).index_select(0, members)
        if slot.kind == "dropout" and x.dim() == 5:  # an image's units as rows (see _slot)
            return self._dropout(slot, x.flatten(2)).view(x.shape) if self.training else x
        if slot.kind == "dropout":
            return self._dropout(slot, x) if self.training else x
        return self._activation(slot, x)

    def _ones_column(self, x: torch.Tensor) -> torch.Tensor:
        """:func:`stacked_ops.ones_column` of ``x``, made once per shape, type and mode.

        (A tensor made in inference mode cannot be saved for a backward pass.)
        """
        key = (x.shape[:2], x.dtype, x.device, torch.is_inference_mode_enabled())
        found = self._ones.get(key)
        if found is None:
            found = self._ones[key] = ones_column(x)
        return found

    def _run_image(
        self, slot: _Slot, x: torch.Tensor, members: torch.Tensor | None
    ) -> torch.Tensor:
        """A convolution, a pool, or an image's start or end (see :mod:`stacked_conv`)."""
        leaf = slot.first
        assert leaf is not None
        if slot.kind == "conv":
            stored = getattr(self, f"{slot.key}_weight")
            bias = getattr(self, f"{slot.key}_bias")
            if members is not None:
                stored, bias = stored.index_select(0, members), bias.index_select(0, members)
            return stacked_conv.conv(
                x, stacked_conv.conv_weight(stored, slot.width_in, leaf.detail[0]), bias
            )
        if slot.kind == "reshape":
            return stacked_conv.reshape(x, (slot.width_out, *leaf.spatial_out))
        if slot.kind == "flatten":
            return stacked_conv.flatten(x, slot.width_out)
        return stacked_conv.pool(slot.kind, leaf.detail[0], x)

    def _batch_norm(self, slot: _Slot, x: torch.Tensor) -> torch.Tensor:
        # Flattened to (batch, P * width[, H, W]): F.batch_norm then keeps one channel
        # per member and unit (or image channel): exactly each member's own statistics.
        size, batch, width, *pixels = x.shape
        # (one member: the same memory as a view, without two transposes and their backward)
        flat = (
            x.squeeze(0) if size == 1 else x.transpose(0, 1).reshape(batch, size * width, *pixels)
        )
        out = functional.batch_norm(
            flat,
            getattr(self, f"{slot.key}_running_mean"),
            getattr(self, f"{slot.key}_running_var"),
            getattr(self, f"{slot.key}_weight"),
            getattr(self, f"{slot.key}_bias"),
            self.training,
            slot.numbers[1],
            slot.numbers[0],
        )
        if size == 1:
            return out.unsqueeze(0)
        return out.view(batch, size, width, *pixels).transpose(0, 1)

    def _dropout(self, slot: _Slot, x: torch.Tensor) -> torch.Tensor:
        """Every member's mask in one draw: its key, the step, its layer, each element's place."""
        if not slot.draws:
            return x
        masks = self._dropout_masks.get(slot.key)
        if masks is None:
            assert slot.rates is not None and slot.stream is not None
            assert slot.thresholds is not None and slot.real_widths is not None
            masks = DropoutMasks(
                slot.stream, slot.real_widths, slot.thresholds, slot.drawing, slot.rates
            )
            self._dropout_masks[slot.key] = masks
        return masks(x, self.steps)

    def dropout_masks(self) -> list[DropoutMasks]:
        """The dropout slots' masks made so far (one forward in training makes them all)."""
        return list(self._dropout_masks.values())

    def _activation(self, slot: _Slot, x: torch.Tensor) -> torch.Tensor:
        """Each member's own activation; members without one pass through."""
        y = x
        for name, slope, members in slot.kinds:
            if members is None:
                return activate(name, slope, x)
            part = activate(name, slope, x.index_select(0, members))
            y = y.index_copy(0, members, part)
        return y

    # -- members in and out ---------------------------------------------------------

    def _member_slices(self, member: int) -> list[tuple[str, str, torch.Tensor]]:
        """``(member's tensor name, part, the stacked slice holding it)`` for each tensor."""
        found = []
        for slot in self.slots:
            leaf = slot.leaves[member]
            if leaf is None or slot.kind not in ("linear", "head", "batch_norm", "conv"):
                continue
            if slot.kind == "batch_norm":
                start = member * slot.width_in
                stop = start + leaf.width_in
                for part in ("weight", "bias", "running_mean", "running_var"):
                    flat = getattr(self, f"{slot.key}_{part}")
                    found.append((f"{leaf.name}.{part}", part, flat[start:stop]))
                continue
            # a conv's (out, lanes); a linear's (out, in), (out,) looping (without the P axis
            # alone), else (in, out), (1, out)
            weight = getattr(self, f"{slot.key}_weight")
            bias = getattr(self, f"{slot.key}_bias")
            if not (self.member_loop and self.size == 1 and slot.kind != "conv"):
                weight, bias = weight[member], bias[member]
            if slot.kind == "conv":
                weight = stacked_conv.member_conv_weight(weight, leaf, slot.width_in)
            elif self.member_loop:
                weight = weight[: leaf.width_out, : leaf.width_in]
            else:
                weight, bias = weight[: leaf.width_in, : leaf.width_out].T, bias[0]
            found.append((f"{leaf.name}.weight", "weight", weight))
            found.append((f"{leaf.name}.bias", "bias", bias[: leaf.width_out]))
        return found

    def batch_norm_names(self, member: int) -> list[str]:
        """State-dict prefixes of ``member``'s batch norms."""
        return [
            slot.leaves[member].name  # type: ignore[union-attr]
            for slot in self.slots
            if slot.kind == "batch_norm" and slot.leaves[member] is not None
        ]

    def member_state(self, member: int) -> dict[str, torch.Tensor]:
        """``member``'s state dict as its own compiled network names it (CPU copies)."""
        state = {}
        for name, part, tensor in self._member_slices(member):
            # a contiguous copy: a linear weight is a transposed view of its stored slice
            state[name] = tensor.detach().to(
                "cpu", copy=True, memory_format=torch.contiguous_format
            )
            if part == "running_var":  # then its count, in the order a BatchNorm1d keeps
                prefix = name.removesuffix(".running_var")
                counted = self._counted_before.get((member, prefix), 0) + self.steps
                state[f"{prefix}.num_batches_tracked"] = torch.tensor(counted, dtype=torch.int64)
        return state

    def load_member(self, member: int, state: Mapping[str, torch.Tensor]) -> None:
        """Copies ``state`` (a member's own state dict, e.g. after inheritance) into the stack."""
        with torch.no_grad():
            for name, _, target in self._member_slices(member):
                target.copy_(state[name])
        for prefix in self.batch_norm_names(member):
            counted = int(state[f"{prefix}.num_batches_tracked"]) - self.steps
            self._counted_before[(member, prefix)] = counted
