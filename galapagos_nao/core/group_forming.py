"""Forming groups: which candidates train together, with little padding.

:func:`partition` visits the candidates in an order that puts alike ones
together and lets each join a recent group it lines up with
(:func:`~galapagos_nao.core.group_plan.plan_group`), as long as the group stays
*exact* (when asked: no member padded past its own canonical widths, so each
computes the same bits as alone) and its wasted work stays within a bound
(:func:`~galapagos_nao.core.group_plan.wasted_share`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from galapagos_nao.core.group_plan import (
    MAX_PADDED_SHARE,
    GroupPlan,
    Leaf,
    bucket,
    element_work,
    is_exact,
    joined_plan,
    product_macs,
    wasted_share,
)

__all__ = ["partition"]

#: Groups :func:`partition` tries for each member, the most recent first.
_OPEN_GROUPS = 8


def partition(
    members: Sequence[Sequence[Leaf] | None],
    group_size: int,
    input_features: int,
    *,
    exact: bool = True,
    max_padded_share: float = MAX_PADDED_SHARE,
) -> list[list[int]]:
    """Indices in groups of at most ``group_size``, formed so that padding wastes little.

    Members are visited in an order that puts alike ones next to each other (the
    same sequence of leaf kinds, then close widths); each joins the most recent
    of the last :data:`_OPEN_GROUPS` groups that it lines up with, has room and
    stays exact (if ``exact``) and within ``max_padded_share`` of wasted work
    (:func:`wasted_share`); else it opens a new group.
    ``None`` members (unbatchable) each get a group of their own.
    """
    groups: list[_OpenGroup] = []
    order = sorted(
        (i for i, m in enumerate(members) if m is not None),
        key=lambda i: _similarity_key(members[i] or ()),
    )
    for index in order:
        leaves = members[index]
        assert leaves is not None
        for group in groups[: -_OPEN_GROUPS - 1 : -1]:
            if len(group.indices) < group_size and group.join(
                index, leaves, exact=exact, max_wasted=max_padded_share
            ):
                break
        else:
            groups.append(_OpenGroup(index, leaves, input_features))
    found = [group.indices for group in groups]
    found.extend([i] for i, m in enumerate(members) if m is None)
    return found


class _OpenGroup:
    """A group being formed, with per-slot sums that make a typical join cost O(layers).

    A member whose sequence of leaf kinds some member already has takes that
    member's slots; only a new sequence is aligned (and the sums rebuilt).
    """

    def __init__(self, index: int, leaves: Sequence[Leaf], features: int) -> None:
        self.indices = [index]
        self.features = features
        self.plan = GroupPlan((tuple(leaves),), tuple((i,) for i in range(len(leaves))))
        self._rebuild()

    def _rebuild(self) -> None:
        """Mappings and per-slot sums from :attr:`plan`."""
        self.mappings: dict[tuple[Any, ...], list[int]] = {}
        n_slots = len(self.plan.slots)
        self.firsts = [self.plan.first(s) for s in range(n_slots)]
        self.ins: list[set[int]] = [set() for _ in range(n_slots)]
        self.outs: list[set[int]] = [set() for _ in range(n_slots)]
        self.real = [0] * n_slots
        for member, leaves in enumerate(self.plan.members):
            column = [self.plan.slots[s][member] for s in range(n_slots)]
            key = tuple(leaf.token for leaf in leaves)
            self.mappings.setdefault(key, [s for s in range(n_slots) if column[s] is not None])
            self._add(self._widths(column, leaves))

    def _widths(
        self, column: Sequence[int | None], leaves: Sequence[Leaf]
    ) -> list[tuple[int, int, bool]]:
        """A member's (features in, features out, has a leaf) at every slot."""
        width, found = self.features, []
        for index in column:
            out = width if index is None else leaves[index].width_out
            found.append((width, out, index is not None))
            width = out
        return found

    def _add(self, widths: Sequence[tuple[int, int, bool]]) -> None:
        for slot, (width_in, width_out, present) in enumerate(widths):
            self.ins[slot].add(self._bucket(slot, width_in, "in"))
            self.outs[slot].add(self._bucket(slot, width_out, "out"))
            if present:
                self.real[slot] += self._work(slot, width_in, width_out)

    def _work(self, slot: int, width_in: int, width_out: int) -> int:
        first = self.firsts[slot]
        return product_macs(first, width_in, width_out) + element_work(first, width_in)

    def _bucket(self, slot: int, width: int, side: str) -> int:
        """``width`` as held alone: an image's channels as they are, features rounded up."""
        first = self.firsts[slot]
        return bucket(width, bool(first.spatial_in if side == "in" else first.spatial_out))

    def _fits(
        self, widths: Sequence[tuple[int, int, bool]], size: int, exact: bool, max_wasted: float
    ) -> bool:
        real = padded = 0
        for slot, (width_in, width_out, present) in enumerate(widths):
            ins = self.ins[slot] | {self._bucket(slot, width_in, "in")}
            outs = self.outs[slot] | {self._bucket(slot, width_out, "out")}
            if exact and (len(ins) > 1 or len(outs) > 1):
                return False
            real += self.real[slot] + (self._work(slot, width_in, width_out) if present else 0)
            padded += size * self._work(slot, max(ins), max(outs))
        return padded == 0 or 1.0 - real / padded <= max_wasted

    def join(self, index: int, leaves: Sequence[Leaf], *, exact: bool, max_wasted: float) -> bool:
        """Adds the member if it lines up and keeps the group within bounds; says whether."""
        mapping = self.mappings.get(tuple(leaf.token for leaf in leaves))
        if mapping is not None:
            column: list[int | None] = [None] * len(self.plan.slots)
            for leaf, slot in enumerate(mapping):
                column[slot] = leaf
            widths = self._widths(column, leaves)
            if not self._fits(widths, self.plan.size + 1, exact, max_wasted):
                return False
            slots = tuple((*old, new) for old, new in zip(self.plan.slots, column, strict=True))
            self.plan = GroupPlan((*self.plan.members, tuple(leaves)), slots)
            self.indices.append(index)
            self._add(widths)
            return True
        joined = joined_plan(self.plan, leaves, self.ins)
        if joined is None:
            return False
        if len(joined.slots) == len(self.plan.slots):  # no slot inserted: check the sums
            column = [slot[-1] for slot in joined.slots]
            widths = self._widths(column, leaves)
            if not self._fits(widths, joined.size, exact, max_wasted):
                return False
            self.plan = joined
            self.indices.append(index)
            self.mappings[tuple(leaf.token for leaf in leaves)] = [
                s for s, leaf in enumerate(column) if leaf is not None
            ]
            self._add(widths)
            return True
        if exact and not is_exact(joined, self.features):
            return False
        if wasted_share(joined, self.features) > max_wasted:
            return False
        self.plan = joined
        self.indices.append(index)
        self._rebuild()  # slots were inserted: every member's widths move
        return True


def _similarity_key(leaves: Sequence[Leaf]) -> tuple[Any, ...]:
    return (
        len(leaves),
        tuple(leaf.token for leaf in leaves),
        tuple(leaf.bucket_out for leaf in leaves),
    )
