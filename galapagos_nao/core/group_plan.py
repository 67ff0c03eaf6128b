"""Which candidates train together, and how their layers line up in one stacked model.

A compiled network is read as a list of :class:`Leaf` records
(:mod:`~galapagos_nao.core.group_leaves`), one per module that computes
something: a product (linear, convolution, the head), a batch norm, an
activation, a dropout, and on images the input's reshape, a pool, a flatten.
Members of a group need not
be alike. Their leaves are aligned into *slots* (:class:`GroupPlan`): a slot
holds one leaf of each member that has one there; a member without one passes
its input through (an identity position), which products, batch norms,
activations and dropouts allow. Reshapes, pools, flattens and the head change
the shape and must line up in every member; on images a slot's leaves also
share the image size, and a convolution slot its kernel size.

Widths are padded to the group's largest at each point. Every width is first
rounded up to a multiple of :data:`CANONICAL`, alone too, so that a member's
units sit in the same vector lanes alone and in a group (the CPU's optimizer
and element-wise kernels round differently in the vector body and the scalar
tail of a tensor). An *exact* group pads no member past its own canonical
widths: then every product a member makes has the same shape alone and in the
group, and it computes the same bits (MKL picks its kernel, and with it the
order of each sum, by the product's shape; measured on the 2-core AVX-512
machine, a 784-input layer of 48 units rounds differently when padded to 64).
Members of an exact group still differ in exact widths within a bucket, in
depth, in activation kinds and slopes and in dropout rates. A *loose* group
pads widths freely, up to a share of wasted multiply-adds: more members per
group on a GPU, at the price of rounding differences from alone.

An image's channels are padded the same way, but not rounded up alone (see
:func:`~galapagos_nao.core.group_leaves.bucket`): the members of an exact
group's convolution slots have the same channels.

:func:`~galapagos_nao.core.group_forming.partition` forms either kind;
:func:`padded_share` is the share of a group's multiply-adds spent on padding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from galapagos_nao.core.group_leaves import (
    CANONICAL,
    ZERO_PRESERVING,
    Leaf,
    Unbatchable,
    bucket,
    canonical,
    leaf_modules,
    member_leaves,
)

__all__ = [
    "CANONICAL",
    "MAX_PADDED_SHARE",
    "GroupPlan",
    "Leaf",
    "Unbatchable",
    "alignment",
    "canonical",
    "element_work",
    "group_macs",
    "is_exact",
    "leaf_modules",
    "member_leaves",
    "joined_plan",
    "padded_share",
    "padded_widths",
    "product_macs",
    "slot_alignment",
    "wasted_share",
    "ZERO_PRESERVING",
]

#: Wasted work above which a group takes no more members (see ``group_forming``).
MAX_PADDED_SHARE = 0.5

#: Leaf kinds a member may lack in a slot (it passes its input through), and what
#: that costs in an alignment: a product padded for a member that skips it wastes
#: far more than an element-wise slot.
_PASS_COST = {"linear": 8, "conv": 8, "batch_norm": 1, "act": 1, "dropout": 1}
SKIPPABLE = frozenset(_PASS_COST)
#: Cost of matching a leaf to a slot whose inputs have another canonical width.
_MISFIT = 4


@dataclass(frozen=True)
class GroupPlan:
    """Members' leaves aligned into slots.

    Attributes:
        members: Each member's leaves.
        slots: For each slot, each member's leaf index there, or None (it passes through).
    """

    members: tuple[tuple[Leaf, ...], ...]
    slots: tuple[tuple[int | None, ...], ...]

    @property
    def size(self) -> int:
        """Members."""
        return len(self.members)

    def kind(self, slot: int) -> str:
        """The kind of the leaves in ``slot``."""
        return self.first(slot).kind

    def first(self, slot: int) -> Leaf:
        """The first leaf in ``slot``: what every leaf there shares (its token) it holds too."""
        for member, index in enumerate(self.slots[slot]):
            if index is not None:
                return self.members[member][index]
        raise AssertionError("a slot without leaves")

    def leaf(self, slot: int, member: int) -> Leaf | None:
        """``member``'s leaf in ``slot``, or None."""
        index = self.slots[slot][member]
        return None if index is None else self.members[member][index]

    def widths(self, input_features: int) -> list[tuple[list[int], list[int]]]:
        """Per slot, each member's real features (on an image, channels) coming in and going out."""
        current = [input_features] * self.size
        found = []
        for slot in range(len(self.slots)):
            out = list(current)
            for member in range(self.size):
                leaf = self.leaf(slot, member)
                if leaf is not None:
                    out[member] = leaf.width_out
            found.append((current, out))
            current = out
        return found


def padded_widths(plan: GroupPlan, input_features: int) -> list[tuple[int, int]]:
    """Per slot, the padded features coming in and going out.

    The head too is padded (its extra logits are cut off before the loss): its
    bias of ``n_classes`` values would otherwise sit in the scalar tail of the
    optimizer's vector loop alone and in its vector body in a group, where the
    two round differently.
    """
    found = []
    for slot, (ins, outs) in enumerate(plan.widths(input_features)):
        first = plan.first(slot)
        image_in, image_out = bool(first.spatial_in), bool(first.spatial_out)
        found.append(
            (max(bucket(w, image_in) for w in ins), max(bucket(w, image_out) for w in outs))
        )
    return found


def product_macs(leaf: Leaf, width_in: int, width_out: int) -> int:
    """Multiply-adds per sample of ``leaf``'s product at these widths (0 for other kinds)."""
    if leaf.kind in ("linear", "head"):
        return width_in * width_out
    if leaf.kind == "conv":
        return width_in * width_out * leaf.detail[0] ** 2 * leaf.area_in
    return 0


def element_work(leaf: Leaf, width_in: int) -> int:
    """Work per sample of ``leaf``'s element-wise pass at this width (see :data:`ELEMENT_WORK`)."""
    return ELEMENT_WORK.get(leaf.kind, 0) * width_in * leaf.area_in


def group_macs(plan: GroupPlan, input_features: int) -> tuple[int, int]:
    """Multiply-adds per sample of the members' own products, and of the padded group's."""
    real = padded = 0
    pads = padded_widths(plan, input_features)
    for slot, (ins, outs) in enumerate(plan.widths(input_features)):
        first = plan.first(slot)
        padded += plan.size * product_macs(first, *pads[slot])
        for member in range(plan.size):
            if plan.leaf(slot, member) is not None:
                real += product_macs(first, ins[member], outs[member])
    return real, padded


def padded_share(plan: GroupPlan, input_features: int) -> float:
    """Share of the group's multiply-adds per sample spent on padding and pass-through members."""
    real, padded = group_macs(plan, input_features)
    return 1.0 - real / padded if padded else 0.0


#: Work per unit and sample of an element-wise slot, in multiply-adds of a product:
#: measured roughly on the CPU, where an element-wise pass costs far more per
#: element than a multiply-add inside a matrix product (a dropout hashes each unit).
ELEMENT_WORK = {"act": 4, "batch_norm": 16, "dropout": 40}


def wasted_share(plan: GroupPlan, input_features: int) -> float:
    """Share of the group's work (products and element-wise slots) spent on padding.

    What ``group_forming.partition`` bounds: a slot that one member in eight uses still
    costs every member its element-wise pass.
    """
    real, padded = group_macs(plan, input_features)
    pads = padded_widths(plan, input_features)
    for slot, (ins, _) in enumerate(plan.widths(input_features)):
        first = plan.first(slot)
        padded += plan.size * element_work(first, pads[slot][0])
        real += sum(
            element_work(first, ins[m]) for m in range(plan.size) if plan.leaf(slot, m) is not None
        )
    return 1.0 - real / padded if padded else 0.0


def is_exact(plan: GroupPlan, input_features: int) -> bool:
    """Whether no member is padded past its own width alone anywhere (see the module doc).

    Alone, features are rounded up to :data:`CANONICAL` and channels are not
    (:func:`~galapagos_nao.core.group_leaves.bucket`): in an exact group the
    members of a convolution slot have the same channels.
    """
    for slot, (ins, outs) in enumerate(plan.widths(input_features)):
        first = plan.first(slot)
        if len({bucket(w, bool(first.spatial_in)) for w in ins}) > 1:
            return False
        if len({bucket(w, bool(first.spatial_out)) for w in outs}) > 1:
            return False
    return True


def _align(
    plan: GroupPlan, leaves: Sequence[Leaf], widths_in: Sequence[set[int]] | None = None
) -> list[tuple[int | None, int | None]] | None:
    """The cheapest alignment of ``leaves`` to ``plan``'s slots, as (slot, leaf) pairs.

    Edit distance over tokens: a slot may go without the new member's leaf, or a
    leaf become a new slot the others pass through, only for skippable kinds;
    each such position costs what it pads, and so does a match whose input
    widths differ. None when no alignment exists.
    """
    tokens = [_slot_token(plan, s) for s in range(len(plan.slots))]
    if widths_in is None:  # each slot's input widths as held alone
        widths_in = [
            {bucket(w, bool(plan.first(s).spatial_in)) for w in ins}
            for s, (ins, _) in enumerate(plan.widths(leaves[0].width_in))
        ]
    return slot_alignment(tokens, plan.size, leaves, widths_in)


def slot_alignment(
    tokens: Sequence[tuple[Any, ...]],
    size: int,
    leaves: Sequence[Leaf],
    widths_in: Sequence[set[int]],
) -> list[tuple[int | None, int | None]] | None:
    """:func:`alignment` given what it reads of the plan: its slots' tokens and its size.

    For a caller that keeps those as members join (``group_forming``), rather
    than a plan to read them from.
    """
    n, m = len(tokens), len(leaves)
    inf = math.inf
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    move: list[list[int]] = [[0] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    # what the loop reads, read once (it runs for every join partition tries)
    leaf_tokens = [leaf.token for leaf in leaves]
    buckets_in = [leaf.bucket_in for leaf in leaves]
    skip_costs = [_PASS_COST.get(token[0], inf) for token in tokens]
    insert_costs = [size * _PASS_COST.get(leaf.kind, inf) for leaf in leaves]
    for i in range(n + 1):
        for j in range(m + 1):
            here = cost[i][j]
            if here == inf:
                continue
            if i < n and j < m and tokens[i] == leaf_tokens[j]:
                # a leaf whose input is not as wide as the slot's pads (or is padded)
                matched = here + (buckets_in[j] not in widths_in[i]) * _MISFIT
                if matched < cost[i + 1][j + 1]:
                    cost[i + 1][j + 1], move[i + 1][j + 1] = matched, 0
            if i < n and skip_costs[i] < inf:
                skip = here + skip_costs[i]
                if skip < cost[i + 1][j]:
                    cost[i + 1][j], move[i + 1][j] = skip, 1
            if j < m and insert_costs[j] < inf:
                insert = here + insert_costs[j]
                if insert < cost[i][j + 1]:
                    cost[i][j + 1], move[i][j + 1] = insert, 2
    if cost[n][m] == inf:
        return None
    pairs: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i or j:
        step = move[i][j]
        if step == 0:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif step == 1:
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    return pairs[::-1]


def alignment(
    plan: GroupPlan, leaves: Sequence[Leaf], widths_in: Sequence[set[int]] | None = None
) -> list[tuple[int | None, int | None]] | None:
    """The cheapest (slot, leaf) pairs lining ``leaves`` up with ``plan``'s slots, or None.

    A ``(None, leaf)`` pair is a slot the leaf inserts, a ``(slot, None)`` one a
    slot the new member passes through (see :func:`joined_plan`).
    """
    return _align(plan, leaves, widths_in)


def _slot_token(plan: GroupPlan, slot: int) -> tuple[Any, ...]:
    return plan.first(slot).token


def joined_plan(
    plan: GroupPlan, leaves: Sequence[Leaf], widths_in: Sequence[set[int]] | None = None
) -> GroupPlan | None:
    """``plan`` with one more member, or None when its leaves cannot line up."""
    pairs = _same_slots(plan, leaves) or _align(plan, leaves, widths_in)
    return None if pairs is None else _joined(plan, leaves, pairs)


def _same_slots(
    plan: GroupPlan, leaves: Sequence[Leaf]
) -> list[tuple[int | None, int | None]] | None:
    """Each leaf in its own slot, when every member has a leaf in every slot, of these kinds."""
    if (
        all(len(m) == len(leaves) for m in plan.members)
        and all(a.token == b.token for a, b in zip(plan.members[0], leaves, strict=True))
        and all(None not in column for column in plan.slots)
    ):
        return [(i, i) for i in range(len(leaves))]
    return None


def _joined(
    plan: GroupPlan, leaves: Sequence[Leaf], pairs: Sequence[tuple[int | None, int | None]]
) -> GroupPlan:
    """``plan`` with a member whose leaves take the (slot, leaf) ``pairs``."""
    aligned = []
    for slot, leaf in pairs:
        old = plan.slots[slot] if slot is not None else (None,) * plan.size
        aligned.append((*old, leaf))
    return GroupPlan((*plan.members, tuple(leaves)), tuple(aligned))
