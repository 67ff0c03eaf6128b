"""The built-in ``("dropout", [rate])`` layer: its module and its builder.

Owns :class:`SeededDropout`, the dropout whose masks come from a per-model
generator so a seeded run is reproducible, and :func:`build_dropout`, the
builder :mod:`~galapagos_nao.core.genome` registers for the ``"dropout"`` type.
``genome`` re-exports :class:`SeededDropout`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from galapagos_nao.core.layer_spec import Shape

__all__ = ["SeededDropout", "build_dropout"]


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


def build_dropout(params: Sequence[Any], in_shape: Shape) -> tuple[list[nn.Module], Shape]:
    """Builds ``("dropout", [rate])``: one :class:`SeededDropout`; the shape is kept."""
    return [SeededDropout(params[0])], in_shape
