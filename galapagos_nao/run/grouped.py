"""The grouped path of the local evaluator: a generation's candidates as stacked groups.

Candidates whose networks share a bucketed shape signature train together
(:func:`galapagos_nao.core.grouped.fit_group`), each still getting its own
outcome. Everything stays per candidate: a member whose loss goes non-finite is
dropped alone, a group's timeout and a stop report every member, a group that
runs out of memory is split in halves and retried, and a candidate whose layers
have no batched form trains alone (the reason logged once per reason).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from galapagos_nao.core.group_forming import partition_plans
from galapagos_nao.core.group_plan import GroupPlan, Leaf, group_macs
from galapagos_nao.core.grouped import (
    GroupMember,
    Unbatchable,
    fit_group,
    member_plan,
)
from galapagos_nao.core.training import CandidateFailure, TrainSettings
from galapagos_nao.run.records import Candidate, Outcome
from galapagos_nao.run.train import (
    failed_outcome,
    fitted_outcome,
    train_candidate,
    training_memory,
)

__all__ = ["AUTO_CPU_GROUP", "AUTO_CUDA_GROUP", "Grouper", "resolve_group_size", "train_group"]

logger = logging.getLogger("galapagos_nao")

#: ``group_size="auto"`` on the CPU: 1, the per-candidate path (one candidate per
#: core), because grouping did not measure faster here. Seed genome, full MNIST,
#: one epoch, 2 shared cores, through ``evolve``, three runs of
#: ``python -m benchmarks --sections grouped`` (benchmarks/RESULTS.md, "Grouped
#: training"): CPU seconds per candidate-epoch 0.27-0.36 alone, 0.32-0.39 in groups
#: of 2 to 8, at generation sizes 4 and 8; wall-clock rates swung 2x between
#: repeats on the loaded machine. (Grouping did pay on small data, batch 64.)
AUTO_CPU_GROUP = 1
#: ``group_size="auto"`` on CUDA: enough members for the batched matmuls to fill the
#: device (the issue measured 68% of the float32 matmul peak at 256 on an H200).
AUTO_CUDA_GROUP = 256


def resolve_group_size(setting: Any, device: torch.device) -> int:
    """The largest group to form: the ``training.group_size`` setting, with ``"auto"`` resolved."""
    if setting != "auto":
        return int(setting)
    return AUTO_CUDA_GROUP if device.type == "cuda" else AUTO_CPU_GROUP


class Grouper:
    """Partitions candidates into groups and remembers which reasons it already logged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logged: set[str] = set()

    def plan(
        self,
        candidates: Sequence[Candidate],
        input_shape: Sequence[int],
        n_classes: int,
        group_size: int,
        *,
        exact: bool = True,
    ) -> list[tuple[list[Candidate], float]]:
        """Groups of at most ``group_size`` candidates whose layers line up; unbatchable ones alone.

        Groups are formed to keep padding low
        (:func:`~galapagos_nao.core.group_forming.partition`; ``exact`` groups pad
        no member past its own widths, so each computes the same bits as alone);
        each comes with the share of its multiply-adds spent on padding.
        """
        plans = [self.member_plan(c, input_shape, n_classes) for c in candidates]
        return self.groups(candidates, plans, group_size, math.prod(input_shape), exact=exact)

    def member_plan(
        self, candidate: Candidate, input_shape: Sequence[int], n_classes: int
    ) -> list[Leaf] | None:
        """The candidate's layers as a group sees them, or None when it must train alone.

        Reads the genome's shapes, which calls registered builders: user code,
        so the local evaluator runs this on its workers, under a deadline.
        """
        try:
            return member_plan(candidate.layers, input_shape, n_classes)
        except Unbatchable as error:
            self._log_once(str(error))
            return None
        except ValueError:
            return None  # an invalid genome: its own training reports it

    def groups(
        self,
        candidates: Sequence[Candidate],
        plans: Sequence[list[Leaf] | None],
        group_size: int,
        features: int,
        *,
        exact: bool = True,
    ) -> list[tuple[list[Candidate], float]]:
        """:meth:`plan`'s groups from each candidate's :meth:`member_plan`."""
        return [
            ([candidates[i] for i in group], _padded_share(plan, features))
            for group, plan in partition_plans(list(plans), group_size, features, exact=exact)
        ]

    def _log_once(self, reason: str) -> None:
        with self._lock:
            if reason in self._logged:
                return
            self._logged.add(reason)
        logger.info("Trained alone, not in a group: %s", reason)


def _padded_share(plan: GroupPlan | None, features: int) -> float:
    """Share of a group's multiply-adds spent on padding (0 for an unbatchable one).

    Read from the plan the group was formed with, which is the plan it trains
    with (``fit_group``'s ``plan_group`` of its members, in this order).
    """
    if plan is None:
        return 0.0
    real, padded = group_macs(plan, features)
    return 1.0 - real / padded if padded else 0.0


def _member(candidate: Candidate) -> GroupMember:
    weights = candidate.inherited_weights
    return GroupMember(
        candidate.layers,
        candidate.seed,
        parent_weights=weights,
        origins=None if weights is None else candidate.origins,
    )


def _alone(
    candidate: Candidate,
    data: Any,
    settings: TrainSettings,
    should_stop: Callable[[], bool],
    deadline: float | None,
    started: float,
    budget: int | None,
) -> Outcome:
    try:
        return train_candidate(candidate, data, settings, should_stop, deadline, budget)
    # BaseException: the candidate's own SystemExit or KeyboardInterrupt drops it alone.
    except BaseException as error:  # noqa: BLE001
        return failed_outcome(candidate, error, _elapsed(started))


def _group_over_budget(
    group: Sequence[Candidate], data: Any, settings: TrainSettings, budget: int | None
) -> bool:
    """Whether the group's members together need more than ``budget``.

    Members are padded to the group's widths: the widest member's estimate
    times the group's size, from the first member's for speed (groups form
    from members of similar widths).
    """
    if budget is None:
        return False
    try:
        estimate = training_memory(group[0].layers, data, settings)
    except Exception:  # noqa: BLE001 - the group's own training reports a genome that fails
        return False
    return estimate.times(len(group)).total > budget


def _elapsed(started: float) -> float:
    return time.monotonic() - started


def train_group(
    group: Sequence[Candidate],
    data: Any,
    settings: TrainSettings,
    should_stop: Callable[[], bool],
    deadline: float | None,
    started: float,
    padded_share: float = 0.0,
    budget: int | None = None,
) -> list[Outcome]:
    """Trains one group; one outcome per candidate, in order.

    Args:
        group: Candidates whose layers line up (a single one trains with ``fit``).
        data: The task's splits on the group's device.
        settings: Training settings.
        should_stop: Polled every batch.
        deadline: ``time.monotonic()`` after which every member still training times out.
        started: When the group started, for failures' ``seconds``.
        padded_share: The group's share of multiply-adds spent on padding, for its outcomes.
        budget: Bytes the group may need to train (``training.max_memory``
            resolved); a group over it is split in halves first, a candidate
            over it alone is dropped. None: no budget.
    """
    if len(group) == 1:
        alone = _alone(group[0], data, settings, should_stop, deadline, started, budget)
        return [dataclasses.replace(alone, padded_share=padded_share)]
    again = functools.partial(
        train_group,
        data=data,
        settings=settings,
        should_stop=should_stop,
        deadline=deadline,
        started=started,
        budget=budget,
    )
    if _group_over_budget(group, data, settings, budget):
        half = len(group) // 2
        return [*again(group[:half]), *again(group[half:])]
    try:
        results = fit_group(
            [_member(c) for c in group],
            data,
            settings,
            should_stop=should_stop,
            deadline=deadline,
        )
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(group) // 2
        logger.info(
            "A group of %d ran out of memory: retrying as %d + %d",
            len(group),
            half,
            len(group) - half,
        )
        return [*again(group[:half]), *again(group[half:])]
    except Unbatchable as error:  # the plan said otherwise; train each alone rather than fail
        logger.info("Group of %d trained alone: %s", len(group), error)
        return [_alone(c, data, settings, should_stop, deadline, started, budget) for c in group]
    # BaseException: e.g. batch norm on a batch of one, or a member's own SystemExit:
    # every member fails alike, and the run goes on.
    except BaseException as error:  # noqa: BLE001
        return [failed_outcome(c, error, _elapsed(started)) for c in group]
    outcomes = []
    for candidate, result in zip(group, results, strict=True):
        if isinstance(result, CandidateFailure):
            outcome = failed_outcome(candidate, result, _elapsed(started))
        else:
            outcome = fitted_outcome(candidate, data, settings, result)
        outcomes.append(
            dataclasses.replace(outcome, group_size=len(group), padded_share=padded_share)
        )
    return outcomes
