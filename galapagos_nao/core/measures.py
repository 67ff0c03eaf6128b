"""Behaviour measures: the axes of the archive, each split into levels.

A measure maps a network to one number (its *behaviour*) and knows how to
split the range of a pool of such numbers into ``levels`` bins; a network's
level along the measure is the first bin (1-based) whose upper edge is ≥ its
value. Edges are recomputed from the pool at every selection, as in the seed,
so changing the levels (or finding a larger network) re-bins the whole archive.

Built in:

- ``layers``: the seed's complexity (number of layers); edges
  ``max * i / levels`` over ``[0, max]`` (4 layers, 2 levels → ``[2, 4]``);
  its levels are the seed's ``complexity_levels`` setting. The archive caps
  ``max`` at ``evolution.max_layers`` (see ``caps`` of :func:`bin_networks`),
  so the grid stops stretching where children stop growing.
- ``params``: trainable parameter count; log-spaced edges, because sizes spread
  over orders of magnitude: between fixed bounds set in ``measure_ranges``
  (MNIST defaults), or between the pool's smallest and largest count when the
  setting names no range for it. Fixed bounds matter on MNIST: the first
  784×units layer dominates every count, so between the pool's extremes (one
  tiny outlier, a crowd near 50k) most elites shared the top level.
- ``flops``: compute, as multiply-adds per sample of the forward pass. A
  convolution's cost grows with the image it slides over while its parameters
  do not, so for CNNs this tells cheap networks from costly ones where
  ``params`` cannot; log-spaced edges between the pool's extremes (or bounds
  set in ``measure_ranges``).

Register more with :func:`register_measure`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from galapagos_nao.core.checks import check_int, describe
from galapagos_nao.core.network import Network, build, count_parameters
from galapagos_nao.core.typing import CellKey

__all__ = [
    "LEVELS_SETTING",
    "Grid",
    "Measure",
    "bin_networks",
    "cell_of",
    "MAX_LEVELS",
    "check_measure_levels",
    "check_measure_ranges",
    "check_measures",
    "level_of",
    "measure",
    "measure_names",
    "register_measure",
    "resolve_levels",
    "resolve_ranges",
]

#: ``(values of the pool, levels) -> upper edge of each level``, ascending.
EdgesFunction = Callable[[Sequence[float], int], list[float]]

#: Most levels along one axis: a ceiling no archive needs, and 10**8 would wedge binning.
MAX_LEVELS = 1000
#: The setting that holds the levels of the ``layers`` measure (the seed's name).
LEVELS_SETTING = "complexity_levels"
#: The setting that holds fixed ``[low, high]`` bounds of measures.
RANGES_SETTING = "measure_ranges"
#: Default bounds: on MNIST (784 inputs) 30k..120k parameters are first hidden
#: layers of about 38..150 units, where evolved elites lie; 4 levels then split
#: at 42k, 60k, 85k and 120k. Smaller and larger networks fill the end levels.
DEFAULT_RANGES: dict[str, list[float]] = {"params": [30_000.0, 120_000.0]}


@dataclass(frozen=True)
class Measure:
    """One behaviour measure.

    Attributes:
        name: Name used in ``selection.measures``.
        value: ``net -> number`` placing the network along this axis.
        edges: ``(pool values, levels) -> upper edges``, one per level, ascending.
        default_levels: Levels when ``selection.measure_levels`` does not name it.
        label: Axis label for plots.
        integer: Whether values are whole numbers (plots then label levels
            with the whole numbers they hold).
    """

    name: str
    value: Callable[[Network], float]
    edges: EdgesFunction
    default_levels: int
    label: str
    integer: bool = False


def _layers_value(net: Network) -> float:
    return float(net.complexity)


def _layers_edges(values: Sequence[float], levels: int) -> list[float]:
    # The seed's cutoffs: [0, max complexity] in equal intervals.
    maximum = max(values, default=0.0)
    return [maximum * i / levels for i in range(1, levels + 1)]


def _params_value(net: Network) -> float:
    if net.n_params is not None:
        return float(net.n_params)
    # Untrained records carry no count; building the model is cheap next to training.
    return float(count_parameters(build(net.layers, net.input_shape, net.n_classes)))


def _flops_value(net: Network) -> float:
    # Read off the layers' shape rules: no model is built.
    return float(net.flops)


def _log_edges(values: Sequence[float], levels: int) -> list[float]:
    if not values:
        return [0.0] * levels
    low, high = max(min(values), 1.0), max(max(values), 1.0)
    span = math.log(high) - math.log(low)
    # Rounded to 12 significant digits so that a count lying exactly on an edge
    # (100 between 10 and 1000) is not pushed up a level by exp(log(x)) noise.
    edges = [
        float(f"{math.exp(math.log(low) + span * i / levels):.12g}") for i in range(1, levels + 1)
    ]
    edges[-1] = high  # the largest value always lands in the last level
    return edges


_registry: dict[str, Measure] = {}
_registry_lock = threading.Lock()


def register_measure(
    name: str,
    value: Callable[[Network], float],
    edges: EdgesFunction,
    *,
    default_levels: int = 4,
    label: str | None = None,
    integer: bool = False,
) -> Measure:
    """Registers a behaviour measure so ``selection.measures`` may name it.

    Args:
        name: Its name; must not be registered yet.
        value: ``net -> number``.
        edges: ``(pool values, levels) -> upper edge of each level``, ascending.
        default_levels: Levels when ``selection.measure_levels`` does not name it.
        label: Axis label for plots; ``name`` when None.
        integer: Whether ``value`` gives whole numbers.

    Returns:
        The registered :class:`Measure`.

    Raises:
        ValueError: if ``name`` is empty, not a str or taken, or
            ``default_levels`` is not an int ≥ 1.
        TypeError: if ``value`` or ``edges`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {describe(name)}")
    for argument, function in (("value", value), ("edges", edges)):
        if not callable(function):
            raise TypeError(f"{argument} must be callable, got {describe(function)}")
    check_int("default_levels", default_levels, minimum=1)
    with _registry_lock:
        if name in _registry:
            raise ValueError(f"name: measure {name!r} is already registered")
        registered = Measure(name, value, edges, default_levels, label or name, bool(integer))
        _registry[name] = registered
    return registered


def measure_names() -> list[str]:
    """The registered measures' names, sorted."""
    with _registry_lock:
        return sorted(_registry)


def measure(name: str) -> Measure:
    """The registered measure ``name``.

    Raises:
        KeyError: naming it and the known ones.
    """
    with _registry_lock:
        found = _registry.get(name)
    if found is None:
        raise KeyError(f"unknown measure {name!r}; known: {measure_names()}")
    return found


register_measure(
    "layers", _layers_value, _layers_edges, default_levels=2, label="layers", integer=True
)
register_measure("params", _params_value, _log_edges, default_levels=4, label="parameters")
register_measure(
    "flops", _flops_value, _log_edges, default_levels=4, label="multiply-adds per sample"
)


def resolve_levels(names: Sequence[str], settings: Mapping[str, Any]) -> tuple[int, ...]:
    """The levels of each measure in ``names``, read from a ``selection`` section.

    ``layers`` uses the seed's ``complexity_levels``; any other measure uses
    ``measure_levels[name]``, or its default when absent.
    """
    chosen = settings.get("measure_levels") or {}
    levels = []
    for name in names:
        if name == "layers":
            levels.append(int(settings[LEVELS_SETTING]))
        else:
            levels.append(int(chosen.get(name, measure(name).default_levels)))
    return tuple(levels)


def resolve_ranges(names: Sequence[str], settings: Mapping[str, Any]) -> dict[str, list[float]]:
    """The fixed ``[low, high]`` bounds of the measures in ``names`` that have one."""
    chosen = settings.get(RANGES_SETTING) or {}
    return {name: list(chosen[name]) for name in names if name in chosen}


def level_of(value: float, edges: Sequence[float]) -> int:
    """The first level (1-based) whose upper edge is ≥ ``value``; the last if none."""
    for index, edge in enumerate(edges):
        if value <= edge:
            return index + 1
    return len(edges)


def cell_of(values: Sequence[float], edges: Sequence[Sequence[float]]) -> CellKey:
    """The cell of one network: an int level for one measure, a tuple for several."""
    levels = tuple(level_of(v, e) for v, e in zip(values, edges, strict=True))
    return levels[0] if len(levels) == 1 else levels


def check_measures(name: str, value: Any) -> list[str]:
    """Checks a ``selection.measures`` value: a non-empty list of distinct registered names.

    Raises:
        ValueError: naming ``name``, the index and the offending value.
    """
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{name} must be a non-empty list of measure names, got {describe(value)}")
    known = measure_names()
    for index, item in enumerate(value):
        if item not in known:
            raise ValueError(f"{name}[{index}] must be one of {known}, got {describe(item)}")
        if item in value[:index]:
            raise ValueError(f"{name}[{index}]: measure {item!r} is listed twice")
    return list(value)


def check_measure_levels(name: str, value: Any) -> dict[str, int]:
    """Checks a ``selection.measure_levels`` value: registered name → int in 1..MAX_LEVELS.

    Raises:
        ValueError: naming ``name``, the key and the offending value.
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict of measure name -> levels, got {describe(value)}")
    known = measure_names()
    checked = {}
    for key, levels in value.items():
        if key not in known:
            raise ValueError(f"{name}: unknown measure {describe(key)}; known: {known}")
        if key == "layers":
            raise ValueError(f"{name}['layers']: set the layers' levels with {LEVELS_SETTING!r}")
        checked[key] = check_int(f"{name}[{key!r}]", levels, minimum=1, maximum=MAX_LEVELS)
    return checked


def check_measure_ranges(name: str, value: Any) -> dict[str, list[float]]:
    """Checks a ``selection.measure_ranges`` value: registered name → ``[low, high]``.

    Raises:
        ValueError: naming ``name``, the key and the offending value.
    """
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{name} must be a dict of measure name -> [low, high], got {describe(value)}"
        )
    known = measure_names()
    checked = {}
    for key, bounds in value.items():
        where = f"{name}[{key!r}]"
        if key not in known:
            raise ValueError(f"{name}: unknown measure {describe(key)}; known: {known}")
        if key == "layers":
            raise ValueError(f"{where}: the layers' levels keep the seed's relative cutoffs")
        numbers = (
            isinstance(bounds, (list, tuple))
            and len(bounds) == 2
            and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b)
                for b in bounds
            )
        )
        if not numbers or not 0 < bounds[0] < bounds[1]:
            raise ValueError(f"{where} must be [low, high] with 0 < low < high, got {bounds!r}")
        checked[key] = [float(bounds[0]), float(bounds[1])]
    return checked


@dataclass(frozen=True)
class Grid:
    """The archive's cells as one selection drew them.

    Attributes:
        measures: Measure names, one per axis.
        levels: Levels along each axis.
        edges: Upper edge of every level along each axis.
    """

    measures: tuple[str, ...]
    levels: tuple[int, ...]
    edges: tuple[tuple[float, ...], ...]

    @property
    def cells(self) -> int:
        """How many cells the grid has."""
        return math.prod(self.levels)


def bin_networks(
    nets: Sequence[Network],
    names: Sequence[str],
    levels: Sequence[int],
    ranges: Mapping[str, Sequence[float]] | None = None,
    caps: Mapping[str, float] | None = None,
) -> tuple[Grid, list[CellKey]]:
    """Draws the grid from ``nets`` and places each of them in a cell.

    Args:
        nets: The pool; edges are computed from its values.
        names: Registered measure names, one per axis.
        levels: Levels along each axis.
        ranges: Fixed ``[low, high]`` per measure name: its edges split that
            range (as they would a pool holding just ``low`` and ``high``)
            instead of the pool's; values outside fall in the end levels.
        caps: Most a measure's edges may reach, per measure name: its pool's
            values are clipped to the cap before its edges are drawn, so the
            grid follows the pool up to the cap and no further; larger values
            fall in the last level.

    Returns:
        The grid, and the cell of each net in order.
    """
    chosen = [measure(name) for name in names]
    values = [[m.value(net) for m in chosen] for net in nets]
    ranges = ranges or {}
    caps = caps or {}

    def pool(axis: int, name: str) -> list[float]:
        column = [row[axis] for row in values]
        cap = caps.get(name)
        return column if cap is None else [min(value, cap) for value in column]

    edges = tuple(
        tuple(m.edges(list(ranges.get(m.name, pool(axis, m.name))), count))
        for axis, (m, count) in enumerate(zip(chosen, levels, strict=True))
    )
    grid = Grid(tuple(names), tuple(levels), edges)
    return grid, [cell_of(row, edges) for row in values]
