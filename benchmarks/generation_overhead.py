"""What a generation of mutated children costs besides training: the CPU-side work.

Usage: ``python -m benchmarks.generation_overhead [--size 1024] [--group-size 256]``

On a GPU a generation of 1,024 seed-genome children should train in about 4 s
(issue 19's target, 15,000 candidate-epochs/min), and everything else the
generation does runs on one CPU thread meanwhile or in between: the target
is 10% of it. This times that work here, no GPU needed, through the functions
a run calls, on one thread, twice (the second time with what the first kept,
as in a run's later generations):

- *breed*: the children of the seed genome at mutation rate 0.25 (``breed``);
- *group*: each child's leaves, the loose groups of at most ``--group-size``
  that a GPU forms, and their padded shares (``Grouper.plan``);
- *set up*: each group's plan as ``fit_group`` makes it before training
  (each member's leaves again, ``plan_group``);
- *records*: each trained child's record, weights and all (``Network``, as
  ``fitted_outcome`` makes it after its group trained);
- *select*: the records checked and binned into the archive (``Selection.select``).

It prints seconds per phase and their total as a share of a generation at
the target rate (``size / 250`` s).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.group_forming import plan_group
from galapagos_nao.core.grouped import member_plan
from galapagos_nao.core.network import MNIST_SHAPE, Network
from galapagos_nao.core.record_checks import shapes_and_count
from galapagos_nao.example import seed_layers
from galapagos_nao.run.generation import breed
from galapagos_nao.run.grouped import Grouper

__all__ = ["TARGET_PER_MINUTE", "generation_overhead"]

#: Issue 19's H200 target with mutation on, candidate-epochs per minute.
TARGET_PER_MINUTE = 15_000
MUTATION_RATE = 0.25


def generation_overhead(size: int, group_size: int, seed: int = 0) -> list[dict[str, Any]]:
    """Seconds of each phase for two generations of ``size`` children, and their share.

    Returns:
        One dict per pass: ``{"breed": s, "group": s, "set_up": s, "records": s, "select": s,
        "total": s, "share_of_target_generation": total / (size / 250),
        "groups": n, "size": size}``.
    """
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": size})
    parameters.put("evolution", {"mutation_rate": MUTATION_RATE})
    rng = np.random.default_rng(seed)
    return [_one_pass(parameters, rng, size, group_size) for _ in range(2)]


def _one_pass(
    parameters: Parameters, rng: np.random.Generator, size: int, group_size: int
) -> dict[str, Any]:
    """Breeds, groups, sets up and selects one generation, timing each phase."""
    selection = Selection(parameters=parameters)
    timings: dict[str, Any] = {}
    children = _timed(
        timings,
        "breed",
        lambda: breed([Network(tuple(seed_layers()))], rng, parameters.settings(), 0),
    )
    groups = _timed(
        timings,
        "group",
        lambda: Grouper().plan(children, MNIST_SHAPE, 10, group_size, exact=False),
    )
    _timed(timings, "set_up", lambda: [_group_plan(group) for group, _ in groups])
    weights = [_zero_weights(child.layers) for child in children]
    trained = _timed(
        timings,
        "records",
        lambda: [
            _trained(c.layers, w, i) for i, (c, w) in enumerate(zip(children, weights, strict=True))
        ],
    )
    _timed(timings, "select", lambda: selection.select(trained))
    timings["total"] = sum(timings.values())
    timings["share_of_target_generation"] = timings["total"] / (size * 60 / TARGET_PER_MINUTE)
    timings["groups"], timings["size"] = len(groups), size
    return timings


def _timed(timings: dict[str, Any], phase: str, work: Callable[[], Any]) -> Any:
    began = time.perf_counter()
    found = work()
    timings[phase] = time.perf_counter() - began
    return found


def _group_plan(group: list[Any]) -> Any:
    if len(group) == 1:
        return None  # trains alone, with fit
    return plan_group([member_plan(c.layers, MNIST_SHAPE, 10) for c in group])


def _zero_weights(layers: Any) -> dict[str, torch.Tensor]:
    """Zero weights of the shapes ``layers`` compiles to, as a trained child carries."""
    shapes, _ = shapes_and_count(Network(layers))
    return {
        name: torch.zeros(shape, dtype=torch.int64 if not shape else torch.float32)
        for name, shape in shapes.items()
    }


def _trained(layers: Any, weights: dict[str, torch.Tensor], index: int) -> Network:
    """The record of a trained child, as ``fitted_outcome`` makes it."""
    accuracy = 0.5 + 0.4 * ((index * 7919) % 1000) / 1000
    return Network(
        layers,
        weights=weights,
        val_acc=accuracy,
        test_acc=accuracy,
        train_acc=accuracy,
        loss=1.0 - accuracy,
        n_params=sum(t.numel() for name, t in weights.items() if name.endswith(("weight", "bias"))),
        generation=0,
    )


def main() -> None:
    """Prints one line per pass."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--group-size", type=int, default=256)
    args = parser.parse_args()
    target = args.size * 60 / TARGET_PER_MINUTE
    print(
        f"{args.size} children of the seed genome, mutation rate {MUTATION_RATE}, loose groups "
        f"of at most {args.group_size}; target generation {target:.2f} s"
    )
    for number, found in enumerate(generation_overhead(args.size, args.group_size), start=1):
        phases = "  ".join(
            f"{phase} {found[phase]:.3f}s"
            for phase in ("breed", "group", "set_up", "records", "select")
        )
        print(
            f"pass {number}: {phases}  total {found['total']:.3f}s = "
            f"{100 * found['share_of_target_generation']:.1f}% of the target generation "
            f"({found['groups']} groups)"
        )


if __name__ == "__main__":
    main()
