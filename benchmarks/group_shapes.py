"""How many mutated children train together, and what padding their groups cost.

Usage: ``python -m benchmarks.group_shapes [--size 1024] [--mutation-rate 0.25]``

Breeds one generation from the seed genome (no training, no data) and forms
groups of at most ``--group-size`` the way the evaluator does
(:func:`~galapagos_nao.core.group_plan.partition`): *exact* groups (the CPU's:
no member padded past its own canonical widths, so it computes the same bits
as alone) and *loose* ones (the GPU's: any widths, up to half the
multiply-adds padded). For each it prints the number of groups, the largest,
the member-weighted mean group (the group a random child lands in, on average)
and the padded share of all groups' multiply-adds.
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.group_forming import plan_group
from galapagos_nao.core.group_plan import group_macs
from galapagos_nao.core.grouped import Unbatchable, member_plan, partition
from galapagos_nao.core.network import Network
from galapagos_nao.example import seed_layers
from galapagos_nao.run.generation import breed


def summarize(groups: Sequence[Sequence[int]], plans: Sequence[Any]) -> dict[str, Any]:
    """Groups, the five largest, the member-weighted mean group and the padded share."""
    sizes = sorted((len(g) for g in groups), reverse=True)
    real = padded = 0
    for group in groups:
        members = [plans[i] for i in group]
        if any(m is None for m in members):
            continue
        own, stacked = group_macs(plan_group(members), 784)
        real, padded = real + own, padded + stacked
    return {
        "groups": len(groups),
        "largest": sizes[:5],
        "mean_group": sum(n * n for n in sizes) / max(1, sum(sizes)),
        "padded_share": 1.0 - real / padded if padded else 0.0,
    }


def main() -> None:
    """Prints one line per way of grouping."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--group-size", type=int, default=256)
    parser.add_argument("--mutation-rate", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": args.size})
    parameters.put("evolution", {"mutation_rate": args.mutation_rate})
    rng = np.random.default_rng(args.seed)
    children = breed([Network(tuple(seed_layers()))], rng, parameters.settings(), 0)
    plans: list[Any] = []
    for child in children:
        try:
            plans.append(member_plan(child.layers, (1, 28, 28), 10))
        except Unbatchable:
            plans.append(None)
    kinds = collections.Counter(len(p) for p in plans if p is not None)
    print(
        f"{len(children)} children, mutation rate {args.mutation_rate}, "
        f"groups of at most {args.group_size}; leaves per child {dict(sorted(kinds.items()))}"
    )
    for label, exact in (("exact (CPU)", True), ("loose (GPU)", False)):
        began = time.perf_counter()
        groups = partition(plans, args.group_size, 784, exact=exact)
        seconds = time.perf_counter() - began
        found = summarize(groups, plans)
        print(
            f"{label:<12} groups {found['groups']:>5}  largest {found['largest']}  "
            f"mean group {found['mean_group']:.1f}  padded {found['padded_share']:.1%}  "
            f"planned in {seconds:.2f}s"
        )


if __name__ == "__main__":
    main()
