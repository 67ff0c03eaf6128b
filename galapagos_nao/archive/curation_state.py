"""The curation's plain parts: cell keys, the veto entry, and the state as checkpoints keep it.

:class:`CurationState` is a snapshot of pins, favor and vetoes; :meth:`CurationState.as_dict`
and :meth:`CurationState.from_dict` carry it through a checkpoint (the file is
untrusted, so reading checks every entry). :mod:`~galapagos_nao.archive.curation`
holds the live state and the verbs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from galapagos_nao.core.checks import check_int, describe
from galapagos_nao.core.network import Network, fitness_or
from galapagos_nao.core.typing import CellKey, Layer

__all__ = ["CurationState", "GenomeKey", "Vetoed", "beats", "check_cell", "rank", "size"]

#: A genome in the hashable form the veto list compares (``Network.layers``).
GenomeKey = tuple[Layer, ...]


def rank(net: Network) -> float:
    """What cells compare; an unevaluated network loses to any evaluated one."""
    return fitness_or(net, float("-inf"))


def size(net: Network) -> tuple[float, float]:
    """How large a network is, as cells break ties: its layers, then its parameters."""
    # An untrained record has no count yet: it ranks as the largest of its length.
    return float(net.complexity), math.inf if net.n_params is None else float(net.n_params)


def beats(challenger: Network, holder: Network) -> bool:
    """Whether ``challenger`` takes ``holder``'s cell.

    It must be fitter, or as fit and smaller (fewer layers, then fewer
    parameters): on small validation sets accuracies tie often, and letting the
    smaller network win a tie is what keeps elites from growing without need.
    As fit and as large, the holder stays.
    """
    ours, theirs = rank(challenger), rank(holder)
    return ours > theirs or (ours == theirs and size(challenger) < size(holder))


def check_cell(name: str, cell: Any) -> CellKey:
    """``cell`` if it is an int ≥ 1 or a non-empty tuple of them, else ValueError naming it."""
    if isinstance(cell, tuple) and cell:
        for index, level in enumerate(cell):
            check_int(f"{name}[{index}]", level, minimum=1)
        return cell
    if isinstance(cell, bool) or not isinstance(cell, int):
        raise ValueError(
            f"{name} must be an int or a tuple of ints (one per measure), got {describe(cell)}"
        )
    return check_int(name, cell, minimum=1)


@dataclass(frozen=True)
class Vetoed:
    """A vetoed network: its id and the genome no network may have again."""

    #: Id of the network the veto named.
    id: str
    #: Its genome, as ``(type, params)`` tuples.
    layers: GenomeKey


@dataclass(frozen=True)
class CurationState:
    """A snapshot of the curation, for views, checks and checkpoints."""

    #: Pinned cells, in cell order.
    pinned: tuple[CellKey, ...] = ()
    #: Cells whose favor is not 1, with their weight.
    favored: Mapping[Any, float] = field(default_factory=dict)
    #: The veto list, oldest first.
    vetoed: tuple[Vetoed, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values (cells as ints or lists), as a checkpoint stores them."""
        return {
            "pinned": [_json_cell(cell) for cell in self.pinned],
            "favored": [[_json_cell(cell), weight] for cell, weight in self.favored.items()],
            "vetoed": [
                {"id": v.id, "layers": [[name, list(params)] for name, params in v.layers]}
                for v in self.vetoed
            ],
        }

    @classmethod
    def from_dict(cls, data: Any) -> CurationState:
        """The state :meth:`as_dict` wrote, checked: the file it came from is untrusted.

        Raises:
            ValueError: naming the first entry that is not a cell, a weight or a genome.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"curation must be an object, got {describe(data)}")
        pinned = tuple(
            _cell_from_json(f"curation.pinned[{i}]", cell)
            for i, cell in enumerate(_list("curation.pinned", data.get("pinned", [])))
        )
        favored: dict[Any, float] = {}
        for i, pair in enumerate(_list("curation.favored", data.get("favored", []))):
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError(f"curation.favored[{i}] must be [cell, weight], got {pair!r}")
            weight = pair[1]
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ValueError(f"curation.favored[{i}] weight must be a number, got {weight!r}")
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"curation.favored[{i}] weight must be >= 0, got {weight!r}")
            favored[_cell_from_json(f"curation.favored[{i}]", pair[0])] = float(weight)
        vetoed = tuple(
            _vetoed_from_json(f"curation.vetoed[{i}]", entry)
            for i, entry in enumerate(_list("curation.vetoed", data.get("vetoed", [])))
        )
        return cls(pinned, favored, vetoed)


def _json_cell(cell: Any) -> Any:
    return list(cell) if isinstance(cell, tuple) else cell


def _list(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list, got {describe(value)}")
    return value


def _cell_from_json(name: str, value: Any) -> CellKey:
    return check_cell(name, tuple(value) if isinstance(value, list) else value)


def _vetoed_from_json(name: str, entry: Any) -> Vetoed:
    """A veto entry; its genome is compared, not built, so its layer types need not be known."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
        raise ValueError(f"{name} must be an object with an id, got {describe(entry)}")
    layers = entry.get("layers")
    if not isinstance(layers, list) or not all(
        isinstance(layer, list)
        and len(layer) == 2
        and isinstance(layer[0], str)
        and isinstance(layer[1], list)
        for layer in layers
    ):
        raise ValueError(f"{name}.layers must be a list of [type, params], got {layers!r}")
    return Vetoed(entry["id"], tuple((kind, tuple(params)) for kind, params in layers))
