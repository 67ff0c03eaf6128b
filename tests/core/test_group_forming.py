"""partition forms the groups that judging every joined plan from scratch forms.

It judges a join from per-slot sums and remembers refusals until a group
changes (planning a generation of 1,024 took seconds without).

The reference below is the rule written plainly: visit the members in the same
order, try the last eight groups, take a known leaf-kind sequence's slots or
align, and accept when :func:`is_exact` (if asked) and :func:`wasted_share` of
the joined plan say so, walking every member of every candidate plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.group_forming import (
    _Candidate,
    _OpenGroup,
    _similarity_key,
    partition,
    partition_plans,
    plan_group,
)
from galapagos_nao.core.group_leaves import bucket
from galapagos_nao.core.group_plan import (
    MAX_PADDED_SHARE,
    GroupPlan,
    Leaf,
    is_exact,
    joined_plan,
    wasted_share,
)
from galapagos_nao.core.grouped import Unbatchable, member_plan
from galapagos_nao.core.network import Network
from galapagos_nao.example import conv_layers, seed_layers
from galapagos_nao.run.generation import breed

FEATURES = 784


def _reference(members: Sequence[Sequence[Leaf] | None], size: int, exact: bool) -> list[list[int]]:
    groups: list[tuple[list[int], list[GroupPlan]]] = []
    order = sorted(
        (i for i, m in enumerate(members) if m is not None),
        key=lambda i: _similarity_key(members[i] or ()),
    )
    for index in order:
        leaves = members[index]
        assert leaves is not None
        for indices, holder in groups[:-9:-1]:
            if len(indices) < size:
                joined = _joined(holder[0], leaves)
                if joined is not None and _within(joined, exact):
                    indices.append(index)
                    holder[0] = joined
                    break
        else:
            plan = GroupPlan((tuple(leaves),), tuple((i,) for i in range(len(leaves))))
            groups.append(([index], [plan]))
    found = [indices for indices, _ in groups]
    found.extend([i] for i, m in enumerate(members) if m is None)
    return found


def _joined(plan: GroupPlan, leaves: Sequence[Leaf]) -> GroupPlan | None:
    """A member whose leaf kinds some member has takes that member's slots; else it aligns."""
    tokens = tuple(leaf.token for leaf in leaves)
    for member, own in enumerate(plan.members):
        if tuple(leaf.token for leaf in own) == tokens:
            slots = tuple((*column, column[member]) for column in plan.slots)
            return GroupPlan((*plan.members, tuple(leaves)), slots)
    widths_in = [
        {bucket(w, bool(plan.first(slot).spatial_in)) for w in ins}
        for slot, (ins, _) in enumerate(plan.widths(FEATURES))
    ]
    return joined_plan(plan, leaves, widths_in)


def _within(plan: GroupPlan, exact: bool) -> bool:
    if exact and not is_exact(plan, FEATURES):
        return False
    return wasted_share(plan, FEATURES) <= MAX_PADDED_SHARE


def _generation(start: Any, size: int, rate: float, seed: int) -> list[Any]:
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": size})
    parameters.put("evolution", {"mutation_rate": rate})
    children = breed([Network(start())], np.random.default_rng(seed), parameters.settings(), 0)
    plans: list[Any] = []
    for child in children:
        try:
            plans.append(member_plan(child.layers, (1, 28, 28), 10))
        except Unbatchable:
            plans.append(None)
    return plans


@pytest.mark.parametrize(
    ("start", "rate", "seed"),
    [(seed_layers, 0.25, 0), (seed_layers, 0.6, 1), (conv_layers, 0.25, 2)],
    ids=["seed", "seed-heavily-mutated", "conv"],
)
@pytest.mark.parametrize("exact", [True, False], ids=["exact", "loose"])
def test_partition_forms_the_groups_the_plain_rule_forms(start, rate, seed, exact):
    members = _generation(start, 192, rate, seed)
    for size in (64, 8):
        groups = partition(members, size, FEATURES, exact=exact)
        assert groups == _reference(members, size, exact)
        assert sorted(i for g in groups for i in g) == list(range(len(members)))
    assert max(len(g) for g in partition(members, 64, FEATURES, exact=exact)) > 1


def test_a_group_holds_the_plan_that_joining_each_member_from_scratch_holds():
    """Members that insert slots the others pass through move the slots a known sequence takes."""
    members = [m for m in _generation(seed_layers, 64, 0.6, 3) if m is not None]
    # shuffled: partition's order brings a sequence's members together, before the insertions
    members = [members[i] for i in np.random.default_rng(0).permutation(len(members))]
    group = _OpenGroup(0, members[0], FEATURES)
    plan = group.plan
    inserted = 0
    for index, leaves in enumerate(members[1:], start=1):
        joined = _joined(plan, leaves)
        took = group.join(_Candidate.of(index, leaves, FEATURES), exact=False, max_wasted=1.0)
        assert took == (joined is not None)
        if joined is not None:
            inserted += len(joined.slots) > len(plan.slots)
            plan = joined
        assert group.plan == plan
    assert inserted >= 3


@pytest.mark.parametrize(
    ("start", "rate", "seed"),
    [(seed_layers, 0.25, 4), (seed_layers, 0.6, 5), (conv_layers, 0.25, 6)],
    ids=["seed", "seed-heavily-mutated", "conv"],
)
@pytest.mark.parametrize("exact", [True, False], ids=["exact", "loose"])
def test_a_group_trains_with_the_plan_partition_judged(start, rate, seed, exact):
    """plan_group of a formed group's members, in its order, is the plan partition bounded.

    The plain rule joins each member from scratch: a known sequence of leaf kinds
    takes its first member's slots, another aligns reading every member's widths.
    """
    members = _generation(start, 256, rate, seed)
    inserted = 0
    formed = partition_plans(members, 128, FEATURES, exact=exact)
    for indices, plan in formed:
        if plan is None:
            assert len(indices) == 1 and members[indices[0]] is None
            continue
        group = [members[i] for i in indices]
        assert plan_group(group) == plan
        expected = GroupPlan((tuple(group[0]),), tuple((i,) for i in range(len(group[0]))))
        for leaves in group[1:]:
            joined = _joined(expected, leaves)
            assert joined is not None
            inserted += len(joined.slots) > len(expected.slots)
            expected = joined
        assert plan == expected
        assert exact is False or is_exact(plan, FEATURES)
        # the bound holds for joins: a member alone opens its group whatever it pads
        assert len(group) == 1 or wasted_share(plan, FEATURES) <= MAX_PADDED_SHARE
    assert [indices for indices, _ in formed] == partition(members, 128, FEATURES, exact=exact)
    assert max(len(indices) for indices, _ in formed) > 8
    assert exact or inserted >= 3  # members that insert slots the others pass through


def test_plan_group_refuses_members_whose_shape_changing_layers_do_not_line_up():
    flat = member_plan(seed_layers(), (1, 28, 28), 10)
    image = member_plan(conv_layers(), (1, 28, 28), 10)
    with pytest.raises(Unbatchable, match="member 1's layers do not line up"):
        plan_group([flat, image])
