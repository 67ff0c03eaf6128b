"""Networks the user names: finding them by id, walking their ancestry, breeding two of them.

:class:`Ancestry` is a mixin of :class:`~galapagos_nao.run.api.Session`: it
reads the session's ``selection``, ``library``, ``lineage_registry`` and
``journal``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from galapagos_nao.archive.lineage import LineageRegistry, lineage
from galapagos_nao.archive.selection import Selection
from galapagos_nao.core.checks import check_int, describe
from galapagos_nao.core.crossover import crossover_networks
from galapagos_nao.core.network import Network
from galapagos_nao.run.arguments import fresh_seed
from galapagos_nao.store.journal import Journal
from galapagos_nao.store.library import Library

__all__ = ["Ancestry"]

Finder = Callable[[str], Network | None]


def _resolve(name: str, net: Network | str, find: Finder) -> Network:
    """``net`` itself, or the network its id names.

    Raises:
        ValueError: if ``net`` is neither a Network nor a str.
        KeyError: naming the argument and the id when nothing knows it.
    """
    if isinstance(net, Network):
        return net
    if not isinstance(net, str):
        raise ValueError(f"{name} must be a Network or an id, got {describe(net)}")
    found = find(net)
    if found is None:
        raise KeyError(
            f"{name}: no network with id {net!r} in the Selection, the Library or any run"
        )
    return found


class Ancestry:
    """Lineage and crossover of networks given as objects or ids."""

    selection: Selection
    library: Library
    lineage_registry: LineageRegistry
    journal: Journal

    # -- the user's own breeding ---------------------------------------------------

    def breed(
        self, first: Network | str, second: Network | str, *, seed: int | None = None
    ) -> Network:
        """A child of two networks by one-point crossover, ready for ``put_unevaluated``.

        The child is ``first[:i] + second[j:]`` with random cut points (each parent
        gives at least one layer), starting from the parents' trained weights
        wherever a layer kept its shapes (see :mod:`~galapagos_nao.core.crossover`).

        Args:
            first: A Network, or the id of one the Selection, the Library or a run
                knows; gives the head of the child and its ``parent_id``.
            second: Likewise; gives the tail.
            seed: Seeds the cut points and any fresh init (None: one drawn from
                fresh entropy, recorded in the journal so a replay breeds the same child).

        Returns:
            The new, unevaluated child (not queued: ``gn.Selection.put_unevaluated(child)``).

        Raises:
            ValueError: for a bad argument, or networks of different tasks.
            KeyError: naming an id nothing knows.
        """
        if seed is not None:
            check_int("seed", seed, minimum=0)
        else:
            seed = fresh_seed()
        find = self._finder(self.selection, self.library)
        parents = [_resolve("first", first, find), _resolve("second", second, find)]
        child = crossover_networks(parents[0], parents[1], np.random.default_rng(seed))
        self.journal.record(
            "breed", {"first": parents[0], "second": parents[1], "seed": seed, "child": child}
        )
        return child

    # -- ancestry --------------------------------------------------------------------

    def lineage(
        self,
        net: Network | str,
        *,
        selection: Selection | None = None,
        library: Library | None = None,
    ) -> list[Network]:
        """The chain of networks from ``net`` back to the seed it descends from.

        Args:
            net: A Network, or the id of one the Selection, the Library or a run knows.
            selection: Searched for ids; the shared ``gn.Selection`` when None.
            library: Searched for ids; the shared ``gn.Library`` when None.

        Returns:
            ``[net, parent, grandparent, …, seed]``. Records from the runs' registry
            have no weights; fetch the full network from the Library if you kept it.
            If an ancestor is unknown (bred in another session), the chain stops at
            the last known one, whose ``parent_id`` is then not None.

        Raises:
            ValueError: if ``net`` is neither a Network nor a str.
            KeyError: naming the id when ``net`` is an id nothing knows.
        """
        find = self._finder(
            self.selection if selection is None else selection,
            self.library if library is None else library,
        )
        return lineage(_resolve("net", net, find), find)

    def _finder(self, selection: Selection, library: Library) -> Callable[[str], Network | None]:
        def find(net_id: str) -> Network | None:
            found = self.lineage_registry.get(net_id)
            if found is not None:
                return found
            for net in selection.get_all().values():
                if net.id == net_id:
                    return net
            return library.get_all().get(net_id)

        return find
