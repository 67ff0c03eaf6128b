"""How often do mutated children share a shape, so that they can train as one group?

Usage: ``python -m benchmarks.group_shapes [--size 1024] [--mutation-rate 0.25]``

Breeds one generation from the seed genome (no training, no data) and counts the
distinct group signatures (:func:`~galapagos_nao.core.grouped.group_signature`),
then the same under two looser keys a future grouped path could use: ignoring
the activation kinds, and keeping only the sequence of layers. The
member-weighted mean group is the group a random child lands in, on average:
the number that bounds what grouping can buy at that generation size.
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.grouped import group_signature
from galapagos_nao.core.network import Network
from galapagos_nao.example import seed_layers
from galapagos_nao.run.generation import breed

#: Leaf kinds that carry shapes or state; anything else in a key is an activation kind.
_STRUCTURAL = ("linear", "batch_norm", "flatten")


def _without_activation_kinds(signature: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(
        (key[0], *(part for part in key[1:] if not isinstance(part, str) or part in _STRUCTURAL))
        for key in signature
    )


def _layer_sequence(signature: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(key[0].split(".")[0] for key in signature)


def summarize(keys: Sequence[Any]) -> dict[str, Any]:
    """Distinct keys, the five largest groups and the member-weighted mean group."""
    counts = collections.Counter(keys)
    return {
        "distinct": len(counts),
        "largest": sorted(counts.values(), reverse=True)[:5],
        "mean_group": sum(n * n for n in counts.values()) / len(keys),
    }


def main() -> None:
    """Prints one line per key."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--mutation-rate", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": args.size})
    parameters.put("evolution", {"mutation_rate": args.mutation_rate})
    rng = np.random.default_rng(args.seed)
    children = breed([Network(seed_layers())], rng, parameters.settings(), 0)
    signatures = [group_signature(c.layers, (1, 28, 28), 10) for c in children]
    keys: dict[str, Callable[[Sequence[Any]], Any]] = {
        "signature (today)": tuple,
        "without activation kinds": _without_activation_kinds,
        "layer sequence only": _layer_sequence,
    }
    print(f"{len(children)} children, mutation rate {args.mutation_rate}")
    for label, key in keys.items():
        found = summarize([key(s) for s in signatures])
        print(
            f"{label:<26} distinct {found['distinct']:>5}  largest {found['largest']}  "
            f"mean group {found['mean_group']:.1f}"
        )


if __name__ == "__main__":
    main()
