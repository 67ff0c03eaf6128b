"""What a generation is made of: its children, bred from the archive, and their evaluator."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.settings import Settings
from galapagos_nao.core import evolution
from galapagos_nao.core.network import Network
from galapagos_nao.run.local import LocalEvaluator
from galapagos_nao.run.records import Candidate, Evaluator

__all__ = ["breed", "children_per_generation", "make_evaluator"]

logger = logging.getLogger("galapagos_nao.run")


def children_per_generation(n_parents: int, generation_size: int) -> int:
    """Children a generation breeds: one per parent, and at least ``generation_size``."""
    return max(n_parents, generation_size)


def breed(
    parents: Sequence[Network],
    rng: np.random.Generator,
    settings: Settings,
    generation: int,
    *,
    should_stop: Callable[[], bool] | None = None,
) -> list[Candidate]:
    """One child per parent, at least ``generation_size`` children (parents taken in turn).

    With one parent this is the seed's rule (clone it ``generation_size`` times,
    then mutate each clone); with more it keeps every generation at least as
    large as ``generation_size``. A child whose mutation fails (a registered
    layer's ``mutate`` raised) is dropped with a logged warning naming why.

    Args:
        parents: The networks to breed from, in turn.
        rng: The run's generator.
        settings: The generation's settings.
        generation: The generation's index.
        should_stop: Checked before each child: once it is true, breeding
            ends and the children bred so far are returned.
    """
    if not parents:
        raise RuntimeError(
            "the Selection is empty: nothing to breed from (put_unevaluated a network first)"
        )
    evolving = settings.evolution
    count = children_per_generation(len(parents), settings.orchestration.generation_size)
    candidates = []
    for index in range(count):
        if should_stop is not None and should_stop():
            break
        parent = parents[index % len(parents)]
        try:
            child = evolution.spawn_offspring(
                parent.layers,
                rng,
                mutation_rate=evolving.mutation_rate,
                std_dev=evolving.std_dev,
                layer_types=evolving.layer_types,
            )
        except evolution.MutationFailed as error:
            logger.warning(
                "Generation %d: child %d of %s dropped: %s", generation + 1, index, parent.id, error
            )
            continue
        candidates.append(
            Candidate(
                index=index,
                generation=generation,
                layers=tuple(child.layers),
                seed=int(rng.integers(2**62)),
                parent=parent,
                origins=child.origins,
                mutations=child.mutations,
                inherit=evolving.inherit_weights,
            )
        )
    return candidates


def make_evaluator(parameters: Parameters) -> Evaluator:
    """The evaluator the parameters ask for (local threads by default).

    Raises:
        ImportError: naming the ``galapagos-nao[ray]`` extra when the Ray backend
            is chosen but Ray is not installed.
    """
    orchestration = parameters.settings().orchestration
    if orchestration.backend == "ray":
        # Imported on use: the driver imports Ray, an optional extra.
        from galapagos_nao.run.ray.driver import RayEvaluator

        return RayEvaluator(address=orchestration.ray_address)
    return LocalEvaluator()
