"""Type aliases shared across the package."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

#: One layer of a genome: ``("dense", [64, "relu"])``.
Layer: TypeAlias = tuple[str, Sequence[Any]]
#: A genome: the ordered list of layers between the input adapter and the head.
Genome: TypeAlias = Sequence[Layer]
#: Key of an archive cell: a level for one measure, a tuple of levels for several.
CellKey: TypeAlias = int | tuple[int, ...]
