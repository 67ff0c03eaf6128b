"""What a generation is made of: its children, bred from the archive, and their evaluator."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence

import numpy as np

from galapagos_nao.archive.curation import BreedingPlan
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.settings import EvolutionSettings, Settings
from galapagos_nao.core import evolution
from galapagos_nao.core.network import Network
from galapagos_nao.core.typing import Layer
from galapagos_nao.run.local import LocalEvaluator
from galapagos_nao.run.processes import ProcessEvaluator
from galapagos_nao.run.records import Candidate, Evaluator
from galapagos_nao.run.workers import call_with_deadline, stuck_after

__all__ = [
    "MAX_REDRAWS",
    "bred_from",
    "breed",
    "breed_plan",
    "breed_within",
    "children_per_generation",
    "make_evaluator",
    "nothing_to_breed",
    "parent_order",
]

logger = logging.getLogger("galapagos_nao.run")


def children_per_generation(n_parents: int, generation_size: int) -> int:
    """Children a generation breeds: one per parent, and at least ``generation_size``."""
    return max(n_parents, generation_size)


#: Draws of a child that breaks the constraints (or is vetoed) before it is dropped.
MAX_REDRAWS = 20


def parent_order(count: int, weights: Sequence[float]) -> list[int]:
    """Which parent breeds each of ``count`` children, in proportion to ``weights``.

    Shares are rounded by largest remainder (ties to the earlier parent) and
    handed out round-robin, so equal weights give the plain turn-taking
    ``0, 1, …, n-1, 0, …`` of an unfavored archive, and its random draws.

    Raises:
        RuntimeError: when every weight is 0: nothing may breed.
    """
    total = float(sum(weights))
    if total <= 0:
        raise RuntimeError(
            "every parent has favor 0: nothing may breed (favor a cell or queue a network)"
        )
    exact = [count * weight / total for weight in weights]
    shares = [int(share) for share in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (shares[i] - exact[i], i))
    for index in by_remainder[: count - sum(shares)]:
        shares[index] += 1
    order: list[int] = []
    while len(order) < count:
        for index, left in enumerate(shares):
            if left:
                order.append(index)
                shares[index] -= 1
    return order


def nothing_to_breed(parents: Sequence[Network], weights: Sequence[float]) -> str | None:
    """Why a generation with these parents and favor can breed nothing; None when it can."""
    if not parents:
        return "the Selection is empty; Selection.put_unevaluated(net) gives it a network"
    if sum(weights) <= 0:
        return (
            f"every parent ({len(parents)}) has favor 0; favor a cell or queue a network "
            "(the archive keeps its networks)"
        )
    return None


def _draw_child(
    parent: Network,
    rng: np.random.Generator,
    evolving: EvolutionSettings,
    tabu: Collection[tuple[Layer, ...]],
) -> tuple[evolution.Offspring | None, str]:
    """A child keeping the constraints and off the tabu list, or None and the last reason."""
    reason = ""
    for _ in range(MAX_REDRAWS):
        try:
            child = evolution.spawn_offspring(
                parent.layers,
                rng,
                mutation_rate=evolving.mutation_rate,
                std_dev=evolving.std_dev,
                layer_types=evolving.layer_types,
                input_shape=parent.input_shape,
            )
        except evolution.MutationFailed as error:
            # A registered layer's mutate raised: that child is lost, not the run.
            return None, f": {error}"
        # BaseException: user code's SystemExit, KeyboardInterrupt or GeneratorExit (this
        # runs on the run's thread, which signals never reach) loses that child only.
        except BaseException as error:  # noqa: BLE001
            return None, f": mutate raised {type(error).__name__}: {error}"
        violation = evolution.constraint_violation(
            child.layers, max_layers=evolving.max_layers, forbid=evolving.forbid
        )
        if violation is None and evolution.genome_key(child.layers) not in tabu:
            return child, ""
        reason = violation or "its genome is vetoed"
    return None, f" after {MAX_REDRAWS} draws: {reason}"


def breed(
    parents: Sequence[Network],
    rng: np.random.Generator,
    settings: Settings,
    generation: int,
    *,
    weights: Sequence[float] | None = None,
    tabu: Collection[tuple[Layer, ...]] = frozenset(),
    should_stop: Callable[[], bool] | None = None,
    dropped: list[str] | None = None,
) -> list[Candidate]:
    """At least ``generation_size`` children, one per parent, shared out by ``weights``.

    With one parent this is the seed's rule (clone it ``generation_size`` times,
    then mutate each clone); with more it keeps every generation at least as
    large as ``generation_size``. A child that breaks ``evolution.max_layers``
    or ``evolution.forbid``, or whose genome is on the ``tabu`` list, is drawn
    again, up to :data:`MAX_REDRAWS` times, then dropped with a logged reason.

    Args:
        parents: Elites and queued networks.
        rng: The run's generator.
        settings: The generation's settings.
        generation: Its index.
        weights: Children each parent gets relative to the others (``favor``);
            1 each when None, 0 for one that must not breed.
        tabu: Genomes (as :func:`evolution.genome_key` makes them) no child may have.
        should_stop: Checked before each child: once it is true, breeding
            ends and the children bred so far are returned.
        dropped: Given, it gets the reason of each child dropped.
    """
    if not parents:
        raise RuntimeError(
            "the Selection is empty: nothing to breed from (put_unevaluated a network first)"
        )
    weights = [1.0] * len(parents) if weights is None else list(weights)
    evolving = settings.evolution
    count = children_per_generation(len(parents), settings.orchestration.generation_size)
    candidates = []
    for index, which in enumerate(parent_order(count, weights)):
        if should_stop is not None and should_stop():
            break
        parent = parents[which]
        child, reason = _draw_child(parent, rng, evolving, tabu)
        if child is None:
            if dropped is not None:
                dropped.append(f"dropped{reason}")
            logger.warning(
                "Generation %d: child %d of %s dropped%s",
                generation + 1,
                index,
                parent.id[:8],
                reason,
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


def bred_from(queued: Mapping[int, Network], candidates: Sequence[Candidate]) -> dict[int, Network]:
    """The queued networks a generation used up: those it bred a child from.

    One whose children were all dropped at breeding (``forbid``, ``max_layers``,
    the veto list) stays queued for the next generation, as ``put_unevaluated``
    promises; one that carries metrics competes as it is, so it is used up too.
    """
    parents = {id(candidate.parent) for candidate in candidates}
    return {
        key: net for key, net in queued.items() if id(net) in parents or net.fitness is not None
    }


def breed_plan(
    plan: BreedingPlan,
    rng: np.random.Generator,
    settings: Settings,
    generation: int,
    should_stop: Callable[[], bool],
    dropped: list[str],
) -> list[Candidate]:
    """:func:`breed` from a Selection's breeding plan: its parents, favor and veto list."""
    return breed(
        plan.parents,
        rng,
        settings,
        generation,
        weights=plan.weights,
        tabu=plan.tabu,
        should_stop=should_stop,
        dropped=dropped,
    )


def breed_within(
    plan: BreedingPlan,
    rng: np.random.Generator,
    settings: Settings,
    generation: int,
    stop_event: threading.Event,
    dropped: list[str],
) -> list[Candidate]:
    """:func:`breed_plan` on a thread of its own, given up past the timeout or a stop.

    Breeding runs user code (registered builders, through the genome's shape
    checks, and ``mutate``): one that never returns must not hold the run.
    Its reason, if it is given up or raises, joins ``dropped``.
    """
    bred = call_with_deadline(
        functools.partial(breed_plan, plan, rng, settings, generation, stop_event.is_set, dropped),
        stuck_after(settings.orchestration.timeout),
        stop_event,
        "gn-breed",
    )
    if bred.stuck:
        dropped.append(f"breeding did not return within {bred.task.allowance:g} s")
    elif bred.error is not None:
        dropped.append(f"breeding raised {type(bred.error).__name__}: {bred.error}")
    candidates: list[Candidate] = bred.value or []
    return candidates


def make_evaluator(parameters: Parameters) -> Evaluator:
    """The evaluator the parameters ask for (local threads by default, or processes, or Ray).

    Raises:
        ImportError: naming the ``galapagos-nao[ray]`` extra when the Ray backend
            is chosen but Ray is not installed.
    """
    orchestration = parameters.settings().orchestration
    if orchestration.backend == "ray":
        # Imported on use: the driver imports Ray, an optional extra.
        from galapagos_nao.run.ray.driver import RayEvaluator

        return RayEvaluator(address=orchestration.ray_address)
    if orchestration.backend == "processes":
        return ProcessEvaluator()
    return LocalEvaluator()
