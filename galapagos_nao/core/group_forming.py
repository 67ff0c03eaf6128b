"""Forming groups: which candidates train together, with little padding.

:func:`partition` visits the candidates in an order that puts alike ones
together and lets each join a recent group it lines up with
(:func:`~galapagos_nao.core.group_plan.slot_alignment`), as long as the group stays
*exact* (when asked: no member padded past its own canonical widths, so each
computes the same bits as alone) and its wasted work stays within a bound
(:func:`~galapagos_nao.core.group_plan.wasted_share`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from galapagos_nao.core.group_plan import (
    MAX_PADDED_SHARE,
    GroupPlan,
    Leaf,
    Unbatchable,
    bucket,
    element_work,
    product_macs,
    slot_alignment,
)

__all__ = ["partition", "partition_plans", "plan_group"]

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
    """Indices in groups of at most ``group_size``: :func:`partition_plans` without the plans."""
    return [
        indices
        for indices, _ in partition_plans(
            members, group_size, input_features, exact=exact, max_padded_share=max_padded_share
        )
    ]


def plan_group(members: Sequence[Sequence[Leaf]]) -> GroupPlan:
    """The members' leaves aligned into one plan, joined in order as :func:`partition` joins them.

    A member whose sequence of leaf kinds an earlier member has takes that
    member's slots; another aligns with the slots and the widths the members
    before it take there. So the plan of a group :func:`partition` formed,
    with its members in the group's order, is the plan it judged.

    Raises:
        Unbatchable: If some member's shape-changing layers do not line up with the others'.
    """
    features = members[0][0].width_in if members[0] else 0
    group = _OpenGroup(0, members[0], features)
    for index, leaves in enumerate(members[1:], start=1):
        # no bound on the padding: the members are given, only their alignment can fail
        if not group.join(_Candidate.of(index, leaves, features), exact=False, max_wasted=1.0):
            raise Unbatchable(f"member {index}'s layers do not line up with the others'")
    return group.plan


def partition_plans(
    members: Sequence[Sequence[Leaf] | None],
    group_size: int,
    input_features: int,
    *,
    exact: bool = True,
    max_padded_share: float = MAX_PADDED_SHARE,
) -> list[tuple[list[int], GroupPlan | None]]:
    """Indices in groups of at most ``group_size``, formed so that padding wastes little.

    Members are visited in an order that puts alike ones next to each other (the
    same sequence of leaf kinds, then close widths); each joins the most recent
    of the last :data:`_OPEN_GROUPS` groups that it lines up with, has room and
    stays exact (if ``exact``) and within ``max_padded_share`` of wasted work
    (:func:`wasted_share`); else it opens a new group.
    ``None`` members (unbatchable) each get a group of their own.

    Returns:
        Each group's indices, in the order they joined, and its plan
        (:func:`plan_group` of those members gives the same); None for an
        unbatchable member's group.
    """
    groups: list[_OpenGroup] = []
    order = sorted(
        (i for i, m in enumerate(members) if m is not None),
        key=lambda i: _similarity_key(members[i] or ()),
    )
    for index in order:
        leaves = members[index]
        assert leaves is not None
        candidate = _Candidate.of(index, leaves, input_features)
        for group in groups[: -_OPEN_GROUPS - 1 : -1]:
            if len(group.indices) < group_size and group.join(
                candidate, exact=exact, max_wasted=max_padded_share
            ):
                break
        else:
            groups.append(_OpenGroup(index, leaves, input_features))
    found: list[tuple[list[int], GroupPlan | None]] = [(g.indices, g.plan) for g in groups]
    found.extend(([i], None) for i, m in enumerate(members) if m is None)
    return found


@dataclass(frozen=True)
class _Candidate:
    """A member as the groups judge it, read once.

    Attributes:
        index: Its place in the generation.
        leaves: Its leaves.
        tokens: Its sequence of leaf kinds (:attr:`Leaf.token`).
        held: The kinds and each leaf's widths as held alone: all that decides
            whether a group with it is exact.
        held_widths: The widths as held alone that it takes anywhere (the input's,
            and each leaf's going out).
    """

    index: int
    leaves: tuple[Leaf, ...]
    tokens: tuple[Any, ...]
    held: tuple[Any, ...]
    held_widths: frozenset[int]

    @classmethod
    def of(cls, index: int, leaves: Sequence[Leaf], features: int) -> _Candidate:
        """The candidate of the member at ``index`` with these ``leaves``."""
        tokens = tuple(leaf.token for leaf in leaves)
        buckets = tuple((leaf.bucket_in, leaf.bucket_out) for leaf in leaves)
        held_widths = {bucket(features, bool(leaves[0].spatial_in))}
        held_widths.update(out for _, out in buckets)
        return cls(index, tuple(leaves), tokens, (tokens, buckets), frozenset(held_widths))


class _OpenGroup:
    """A group being formed, with per-slot sums that make a join cost O(layers).

    Per slot it keeps the set of its members' widths in and out (as held alone,
    :func:`~galapagos_nao.core.group_leaves.bucket`), their real work and the raw
    widths going out. A join is judged from those sums and the new member's
    alignment alone, whether it takes an existing member's slots (its sequence
    of leaf kinds is known), lines up with them, or inserts slots the others
    pass through: the checks :func:`is_exact` and :func:`wasted_share` make on
    the joined plan, without walking its members. Refusals are remembered until
    the group changes: alike candidates come one after another.
    """

    def __init__(self, index: int, leaves: Sequence[Leaf], features: int) -> None:
        self.indices = [index]
        self.features = features
        # the plan as lists that joins extend (a GroupPlan of tuples is made when read)
        self._members: list[tuple[Leaf, ...]] = [tuple(leaves)]
        self._columns: list[list[int | None]] = [[i] for i in range(len(leaves))]
        self._plan: GroupPlan | None = None
        self.mappings: dict[tuple[Any, ...], list[int]] = {
            tuple(leaf.token for leaf in leaves): list(range(len(leaves)))
        }
        self.firsts = list(leaves)
        self.ins: list[set[int]] = [set() for _ in leaves]
        self.outs: list[set[int]] = [set() for _ in leaves]
        self.raw_outs: list[set[int]] = [set() for _ in leaves]
        self.real = [0] * len(leaves)
        self._add(self._widths(list(range(len(leaves))), leaves))
        # leaf sequences that cannot line up with the slots, and members refused
        # since the group last changed (by their leaves)
        self._unaligned: set[tuple[Any, ...]] = set()
        self._refused: set[tuple[Leaf, ...]] = set()
        self._inexact: set[tuple[Any, ...]] = set()  # (kinds, widths as held alone)
        self._aligned: dict[tuple[Any, ...], list[tuple[int | None, int | None]]] = {}

    @property
    def plan(self) -> GroupPlan:
        """The members' plan so far."""
        if self._plan is None:
            self._plan = GroupPlan(
                tuple(self._members), tuple(tuple(column) for column in self._columns)
            )
        return self._plan

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
            first = self.firsts[slot]
            self.ins[slot].add(bucket(width_in, bool(first.spatial_in)))
            self.outs[slot].add(bucket(width_out, bool(first.spatial_out)))
            self.raw_outs[slot].add(width_out)
            if present:
                self.real[slot] += _work(first, width_in, width_out)

    def join(self, candidate: _Candidate, *, exact: bool, max_wasted: float) -> bool:
        """Adds the candidate if it lines up and keeps the group within bounds; says whether."""
        if candidate.leaves in self._refused:
            return False
        if exact and (
            candidate.held in self._inexact or candidate.held_widths != self._held_widths()
        ):
            # In an exact group every member is as wide as the others at every slot,
            # so all take the same widths (as held alone) somewhere.
            return False
        pairs = self._pairs(candidate.tokens, candidate.leaves)
        if pairs is None:
            return False
        slots = self._slots_after(pairs, candidate.leaves)
        widths = self._widths([leaf for _, leaf in pairs], candidate.leaves)
        refusal = (
            None  # no bound to judge: a member that lines up joins (plan_group's case)
            if not exact and max_wasted >= 1.0
            else _refusal(slots, widths, len(self._members) + 1, exact, max_wasted)
        )
        if refusal == "inexact":
            self._inexact.add(candidate.held)
        elif refusal is not None:
            self._refused.add(candidate.leaves)
        else:
            self._commit(candidate, pairs, slots, widths)
        return refusal is None

    def _held_widths(self) -> set[int]:
        """The widths as held alone the members take anywhere (see :class:`_Candidate`)."""
        found = {bucket(self.features, bool(self.firsts[0].spatial_in))}
        for outs in self.outs:
            found.update(outs)
        return found

    def _pairs(
        self, tokens: tuple[Any, ...], leaves: Sequence[Leaf]
    ) -> list[tuple[int | None, int | None]] | None:
        """The new member's (slot, leaf) pairs: a known sequence's slots, or its alignment."""
        mapping = self.mappings.get(tokens)
        if mapping is not None:
            pairs: list[tuple[int | None, int | None]] = [
                (slot, None) for slot in range(len(self._columns))
            ]
            for leaf, slot in enumerate(mapping):
                pairs[slot] = (slot, leaf)
            return pairs
        if tokens in self._unaligned:
            return None
        # the alignment reads the kinds, the widths coming in (as held alone) and the size
        key = (tokens, tuple(leaf.bucket_in for leaf in leaves))
        if key in self._aligned:
            return self._aligned[key]
        tokens_now = [first.token for first in self.firsts]
        found = slot_alignment(tokens_now, len(self._members), leaves, self.ins)
        if found is None:
            self._unaligned.add(tokens)  # a matter of kinds alone: so until slots are inserted
        else:
            self._aligned[key] = found
        return found

    def _slots_after(
        self, pairs: Sequence[tuple[int | None, int | None]], leaves: Sequence[Leaf]
    ) -> list[_SlotSums]:
        """The group's sums at each slot of the joined plan, before the new member's.

        A slot the new member inserts is one the others pass through: their
        widths there are their widths after the slot before it.
        """
        found = []
        raw = {self.features}
        for slot, leaf in pairs:
            if slot is not None:
                first = self.firsts[slot]
                found.append(
                    _SlotSums(first, self.ins[slot], self.outs[slot], self.real[slot], raw)
                )
                raw = self.raw_outs[slot]
                continue
            assert leaf is not None
            first = leaves[leaf]
            ins = {bucket(w, bool(first.spatial_in)) for w in raw}
            outs = {bucket(w, bool(first.spatial_out)) for w in raw}
            found.append(_SlotSums(first, ins, outs, 0, raw, inserted=True))
        return found

    def _commit(
        self,
        candidate: _Candidate,
        pairs: Sequence[tuple[int | None, int | None]],
        slots: Sequence[_SlotSums],
        widths: Sequence[tuple[int, int, bool]],
    ) -> None:
        """Takes the member in: the joined plan, the sums, the mappings."""
        size = len(self._members)
        columns: list[list[int | None]] = []
        for old, leaf in pairs:  # an old slot's column grows in place; an inserted one is new
            column: list[int | None] = self._columns[old] if old is not None else [None] * size
            column.append(leaf)
            columns.append(column)
        self._columns = columns
        self._members.append(candidate.leaves)
        self._plan = None
        self.indices.append(candidate.index)
        if any(sums.inserted for sums in slots):  # old slot numbers move
            moved = {old: new for new, (old, _) in enumerate(pairs) if old is not None}
            self.mappings = {
                key: [moved[slot] for slot in found] for key, found in self.mappings.items()
            }
            self._unaligned.clear()
        own = [slot for slot, (_, leaf) in enumerate(pairs) if leaf is not None]
        self.mappings.setdefault(candidate.tokens, own)
        self.firsts = [sums.first for sums in slots]
        self.ins = [set(sums.ins) if sums.inserted else sums.ins for sums in slots]
        self.outs = [set(sums.outs) if sums.inserted else sums.outs for sums in slots]
        self.raw_outs = [
            set(sums.raw) if old is None else self.raw_outs[old]
            for sums, (old, _) in zip(slots, pairs, strict=True)
        ]
        self.real = [sums.real for sums in slots]
        self._add(widths)
        self._refused.clear()
        self._inexact.clear()
        self._aligned.clear()


@dataclass(frozen=True)
class _SlotSums:
    """One slot of a joined plan as the group's members fill it (see ``_OpenGroup``).

    Attributes:
        first: The leaf whose kind and shape flags the slot has.
        ins: The members' widths coming in, as held alone.
        outs: The same going out.
        real: The members' own work there.
        raw: The members' real widths coming in (for an inserted slot, also out).
        inserted: Whether the new member inserts the slot (the others pass through).
    """

    first: Leaf
    ins: set[int]
    outs: set[int]
    real: int
    raw: set[int]
    inserted: bool = False


def _work(first: Leaf, width_in: int, width_out: int) -> int:
    return product_macs(first, width_in, width_out) + element_work(first, width_in)


def _refusal(
    slots: Sequence[_SlotSums],
    widths: Sequence[tuple[int, int, bool]],
    size: int,
    exact: bool,
    max_wasted: float,
) -> str | None:
    """Why the group with a new member of these ``widths`` would break its bounds, or None.

    ``"inexact"`` where :func:`is_exact` of the joined plan would say no (if
    ``exact``), ``"wasteful"`` where :func:`wasted_share` would pass
    ``max_wasted``: both read from the slots' sums.
    """
    real = padded = 0
    for sums, (width_in, width_out, present) in zip(slots, widths, strict=True):
        first = sums.first
        ins = sums.ins | {bucket(width_in, bool(first.spatial_in))}
        outs = sums.outs | {bucket(width_out, bool(first.spatial_out))}
        if exact and (len(ins) > 1 or len(outs) > 1):
            return "inexact"
        real += sums.real + (_work(first, width_in, width_out) if present else 0)
        padded += size * _work(first, max(ins), max(outs))
    return None if padded == 0 or 1.0 - real / padded <= max_wasted else "wasteful"


def _similarity_key(leaves: Sequence[Leaf]) -> tuple[Any, ...]:
    return (
        len(leaves),
        tuple(leaf.token for leaf in leaves),
        tuple(leaf.bucket_out for leaf in leaves),
    )
