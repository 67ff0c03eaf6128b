"""The archive's axes as one read of the settings draws them.

A generation bins its pool along the measures of ``selection.measures``, each
split into its levels; fixed ranges (``selection.measure_ranges``) replace the
pool's own, and caps stop an axis from stretching: the ``layers`` axis goes no
further than ``evolution.max_layers``, since no child is bred past it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from galapagos_nao.config.settings import Settings
from galapagos_nao.core import measures
from galapagos_nao.core.checks import check_int
from galapagos_nao.core.measures import Grid
from galapagos_nao.core.network import Network
from galapagos_nao.core.typing import CellKey

__all__ = ["Axes", "seed_cutoffs"]


@dataclass(frozen=True)
class Axes:
    """What binning needs of the settings.

    Attributes:
        names: Measure names, one per axis.
        levels: Levels along each axis.
        ranges: Fixed ``[low, high]`` of the measures that have one.
        caps: Most each capped measure's edges may reach.
    """

    names: list[str]
    levels: tuple[int, ...]
    ranges: dict[str, list[float]]
    caps: dict[str, float]

    @classmethod
    def read(cls, settings: Settings, complexity_levels: int | None = None) -> Axes:
        """The axes of ``settings``; ``complexity_levels`` overrides the setting when given."""
        selecting = settings.selection
        if complexity_levels is None:
            complexity_levels = selecting.complexity_levels
        chosen = {
            measures.LEVELS_SETTING: check_int("complexity_levels", complexity_levels, minimum=1),
            "measure_levels": selecting.measure_levels,
            "measure_ranges": selecting.measure_ranges,
        }
        names = list(selecting.measures)
        cap = settings.evolution.max_layers
        return cls(
            names,
            measures.resolve_levels(names, chosen),
            measures.resolve_ranges(names, chosen),
            {} if cap is None else {"layers": float(cap)},
        )

    def bin(self, nets: Sequence[Network]) -> tuple[Grid, list[CellKey]]:
        """The grid ``nets`` draw along these axes, and the cell of each."""
        return measures.bin_networks(nets, self.names, self.levels, self.ranges, self.caps)


def seed_cutoffs(complexities: Iterable[int], levels: int, cap: int | None) -> list[float]:
    """The seed's cutoffs: ``max * i / levels`` for ``i`` in ``1..levels``, max at most ``cap``."""
    maximum = float(max(complexities, default=0))
    if cap is not None:
        maximum = min(maximum, float(cap))
    return [maximum * i / levels for i in range(1, levels + 1)]
