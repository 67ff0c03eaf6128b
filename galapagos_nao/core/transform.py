"""The input transform: how a task's data as users hold it becomes what a network saw in training.

Training standardizes a task's data once, up front, and feeds the standardized
tensors to every candidate (a per-batch transform would cost every step). The
trained network must still take the data the way users have it, so each task
and each network record carries its transform as plain data
(:class:`InputTransform`) and :meth:`Network.model` puts it in front of the
layers as a :class:`Standardize` module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from galapagos_nao.core.checks import describe

__all__ = ["IDENTITY", "InputTransform", "Standardize"]


@dataclass(frozen=True)
class InputTransform:
    """``model_input = ((x / 255 if x is uint8 and scale_uint8 else x) - mean) / std``.

    Attributes:
        mean: Subtracted from every input value (after the uint8 scaling).
        std: What the centred value is divided by; > 0.
        scale_uint8: Whether uint8 inputs are images in 0..255 to divide by 255
            first (MNIST); when False a uint8 input is taken at its value.
    """

    mean: float = 0.0
    std: float = 1.0
    scale_uint8: bool = False

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a finite number, got {describe(value)}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.std <= 0:
            raise ValueError(f"std must be > 0, got {self.std!r}")
        if not isinstance(self.scale_uint8, bool):
            raise ValueError(f"scale_uint8 must be a bool, got {describe(self.scale_uint8)}")

    @property
    def is_identity(self) -> bool:
        """Whether float inputs pass unchanged."""
        return self.mean == 0.0 and self.std == 1.0 and not self.scale_uint8

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (float or uint8, any shape) as float32 on the model's scale."""
        if x.dtype == torch.uint8 and self.scale_uint8:
            x = x.to(torch.float32) / 255.0
        else:
            x = x.to(torch.float32)
        if self.mean == 0.0 and self.std == 1.0:
            return x
        return (x - self.mean) / self.std

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields, for files and workspace rows."""
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: Any) -> InputTransform:
        """The inverse of :meth:`to_dict`.

        Raises:
            ValueError: naming the field that is missing, unknown or invalid.
        """
        if not isinstance(fields, Mapping):
            raise ValueError(f"input_transform must be a JSON object, got {describe(fields)}")
        unknown = sorted(set(fields) - {"mean", "std", "scale_uint8"})
        if unknown:
            raise ValueError(f"input_transform has unknown fields {unknown}")
        return cls(**fields)


#: What an old record (written before transforms were recorded) means: inputs are
#: already on the model's scale, as they were then.
IDENTITY = InputTransform()


class Standardize(nn.Module):
    """The input transform as the first module of a model; no state, so no weights change.

    Args:
        transform: The transform to apply.
    """

    def __init__(self, transform: InputTransform) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.transform.apply(x)

    def extra_repr(self) -> str:  # noqa: D102
        t = self.transform
        return f"mean={t.mean}, std={t.std}, scale_uint8={t.scale_uint8}"
