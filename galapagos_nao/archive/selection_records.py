"""The Selection's small records: what ``put`` did, a changed cell, the run that claims it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from galapagos_nao.core.network import Network
from galapagos_nao.core.typing import CellKey

__all__ = ["AddStatus", "Change", "RunClaim"]


class RunClaim(Protocol):
    """What the archive needs of the run that evolves it: whether it has ended."""

    def done(self) -> bool:
        """True once the run has ended."""
        ...


class AddStatus(enum.IntEnum):
    """What :meth:`Selection.put` did."""

    NOT_ADDED = 0  #: the level's elite is fitter, or as fit and no larger
    IMPROVE_EXISTING = 1  #: replaced a less fit elite
    NEW = 2  #: filled an empty level


@dataclass(frozen=True)
class Change:
    """One archive cell whose elite changed in a :meth:`Selection.select`.

    Attributes:
        level: The cell: an int level for one measure, a tuple of levels for several.
        old: The elite it replaced, or None for a newly filled cell.
        new: The new elite.
    """

    level: CellKey
    old: Network | None
    new: Network
