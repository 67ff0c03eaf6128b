"""A stacked dropout slot's keep masks, with what repeats from step to step made once.

Each mask is the members' counter hash of (step, element position)
(:func:`~galapagos_nao.core.counter_rng.keep_mask`), the same numbers as
before; only the work around the hash is shared across steps: the step keys
come 128 steps at a time (:func:`~galapagos_nao.core.counter_rng.step_keys`),
and the element positions of a batch shape are kept while small. On the CPU a
small network's step is bound by the count of kernels it launches, not by
their arithmetic, so every kernel saved per step counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from galapagos_nao.core import counter_rng
from galapagos_nao.core.group_leaves import Leaf

__all__ = ["DropoutMasks", "dropout_fields", "kept_scales"]

#: Steps whose keys one evaluation makes.
_KEY_STEPS = 128
#: Element positions kept per batch shape up to this many (16 MiB of int32).
_KEPT_POSITIONS = 1 << 22


def dropout_fields(
    keys: torch.Tensor,
    leaves: Sequence[Leaf | None],
    outs: Sequence[int],
    area: int,
    device: torch.device,
) -> dict[str, Any]:
    """What a stacked dropout slot holds per member (the stacked model's slot fields).

    Args:
        keys: ``(P,)`` member keys.
        leaves: Each member's dropout leaf, None where it has none (it keeps all).
        outs: Each member's real units (channels on an image).
        area: Pixels per channel on an image, else 1: a row's units run channel by channel.
        device: Where the tensors live.
    """
    rates = [leaf.detail[0] if leaf is not None else 0.0 for leaf in leaves]
    ordinals = torch.tensor([leaf.ordinal if leaf else 0 for leaf in leaves])
    stream = counter_rng.stream_keys(keys, counter_rng.DROPOUT, ordinals)
    drawing = None
    if not all(rate > 0 for rate in rates):
        drawing = torch.tensor([m for m, r in enumerate(rates) if r > 0], device=device)
    return {
        "rates": torch.tensor(rates, dtype=torch.float32, device=device).view(-1, 1, 1),
        "thresholds": counter_rng.keep_thresholds(rates, device),
        "draws": any(rate > 0 for rate in rates),
        "real_widths": torch.tensor(outs, dtype=torch.int32, device=device).view(-1, 1, 1) * area,
        "drawing": drawing,
        "stream": stream.to(device),
    }


def kept_scales(rates: torch.Tensor) -> torch.Tensor:
    """float32 ``1 / (1 - rate)`` of float32 ``rates``, rounded once from float64.

    What a kept element is multiplied by: one product per element (in the
    forward and again in the backward), as ``F.dropout`` scales, rather than a
    product by the mask and a division by the kept share.
    """
    return (1.0 / (1.0 - rates.double())).float()


class DropoutMasks:
    """Applies one dropout slot's masks to ``(P, batch, units)`` rows.

    Args:
        stream: ``(P,)`` the slot's stream keys (one per member).
        real_widths: ``(P, 1, 1)`` int32 units each member really has (a row's
            positions run over those only, as alone).
        thresholds: ``(P, 1, 1)`` keep thresholds (:func:`counter_rng.keep_thresholds`).
        drawing: ``(D,)`` the members that drop anything, or None for all of them.
        rates: ``(P, 1, 1)`` dropout rates (0 for a member that keeps all).
    """

    def __init__(
        self,
        stream: torch.Tensor,
        real_widths: torch.Tensor,
        thresholds: torch.Tensor,
        drawing: torch.Tensor | None,
        rates: torch.Tensor,
    ) -> None:
        if drawing is not None:  # only the members that drop hash anything
            stream, real_widths = stream[drawing], real_widths[drawing]
            thresholds = thresholds[drawing]
        self._stream = stream
        self._real = real_widths
        self._thresholds = thresholds
        self._drawing = drawing
        self._scales = kept_scales(rates)
        self._scale_of: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}
        self._keys: tuple[int, torch.Tensor] | None = None  # (first step, (D, steps) keys)
        self._positions: dict[tuple[int, int], torch.Tensor] = {}
        self._held: torch.Tensor | None = None  # (D,) keys read instead of the step's (hold_keys)

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """``x`` with step ``step``'s mask applied, scaled by the kept share."""
        _, batch, width = x.shape
        keys = self._step_keys(step) if self._held is None else self._held
        keep = counter_rng.keep_mask(
            keys, self._positions_of(batch, width, x.device), self._thresholds
        )
        if self._drawing is not None:
            drawn = keep
            keep = torch.ones(x.shape, dtype=torch.bool, device=x.device)
            keep[self._drawing] = drawn
        scale, zero = self._scales_as(x)
        return x * torch.where(keep, scale, zero)  # in x's type: a bf16 batch stays bf16

    def _scales_as(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The members' scales and a zero, in ``x``'s type and place (made once)."""
        found = self._scale_of.get(x.dtype)
        if found is None:
            scales = self._scales.to(device=x.device, dtype=x.dtype)
            found = self._scale_of[x.dtype] = (scales, scales.new_zeros(()))
        return found

    def hold_keys(self, step: int) -> None:
        """Copies step ``step``'s keys into a buffer that every call reads from now on.

        A captured CUDA graph replays its kernels on the memory it captured: each
        step's keys must arrive in that buffer, or every replay would draw the
        captured step's masks (:mod:`~galapagos_nao.core.graph_step`).
        """
        keys = self._step_keys(step)
        if self._held is None:
            self._held = keys.clone()
        else:
            self._held.copy_(keys)

    def release_keys(self) -> None:
        """Back to the keys of the step each call names."""
        self._held = None

    def _step_keys(self, step: int) -> torch.Tensor:
        if self._keys is None or not 0 <= step - self._keys[0] < _KEY_STEPS:
            self._keys = (step, counter_rng.step_keys(self._stream, step, _KEY_STEPS))
        return self._keys[1][:, step - self._keys[0]]

    def _positions_of(self, batch: int, width: int, device: torch.device) -> torch.Tensor:
        """``(D, batch, width)`` int32: each element's place in its member's own rows."""
        found = self._positions.get((batch, width))
        if found is not None:
            return found
        rows = torch.arange(batch, dtype=torch.int32, device=device).view(1, -1, 1)
        cols = torch.arange(width, dtype=torch.int32, device=device).view(1, 1, -1)
        found = rows * self._real.to(device) + cols
        if found.numel() <= _KEPT_POSITIONS:
            self._positions[(batch, width)] = found
        return found
