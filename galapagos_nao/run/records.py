"""Records evaluators work on: candidates, their outcomes, and the job they belong to.

Plain frozen dataclasses (and the :class:`Evaluator` protocol) that every other
module of the ``run`` layer shares; nothing here trains or schedules.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from galapagos_nao.config.settings import Settings
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.device_data import DeviceDataCache
from galapagos_nao.core.network import Network

#: Logger of the per-candidate lines (the seed's ``Epoch 0. Loss: …``) and of
#: ``Generations remaining``; ``gn.log_level("generation")`` silences it alone.
CANDIDATE_LOGGER = "galapagos_nao.candidates"

__all__ = [
    "CANDIDATE_LOGGER",
    "Candidate",
    "EvaluationJob",
    "Evaluator",
    "Outcome",
]


@dataclass(frozen=True)
class Candidate:
    """One child to train.

    Attributes:
        index: Position in its generation; results are selected in this order.
        generation: The generation it belongs to (0-based).
        layers: Its genome.
        seed: Seeds its init, shuffling and dropout.
        parent: The network it was bred from.
        origins: Parent-layer index of each layer, for weight inheritance.
        mutations: The operators that made it.
        inherit: Whether to start from the parent's weights.
    """

    index: int
    generation: int
    layers: tuple[Any, ...]
    seed: int
    parent: Network | None = None
    origins: tuple[int | None, ...] | None = None
    mutations: tuple[str, ...] = ()
    inherit: bool = True

    @property
    def inherited_weights(self) -> Mapping[str, Any] | None:
        """The parent's weights it starts from, or None (no parent, untrained, or not asked)."""
        if not self.inherit or self.parent is None:
            return None
        return self.parent.weights


@dataclass(frozen=True)
class Outcome:
    """A candidate's result: a trained network, or why it failed.

    ``group_size`` counts the candidates it trained together with as one stacked
    model, itself included (1: it trained alone); ``seconds`` is then the group's time,
    and ``padded_share`` the share of the group's multiply-adds spent on padding.
    """

    candidate: Candidate
    network: Network | None = None
    failure: str | None = None
    stopped: bool = False
    seconds: float = 0.0
    group_size: int = 1
    padded_share: float = 0.0


@dataclass
class EvaluationJob:
    """Everything an evaluator needs besides the candidates.

    Attributes:
        task: The data.
        settings: The generation's settings (one Parameters snapshot, typed).
        stop_event: Set when the run is stopped; candidates end at the next batch.
        data_cache: Device copies of the task, shared across the run.
    """

    task: Task
    settings: Settings
    stop_event: threading.Event
    data_cache: DeviceDataCache


class Evaluator(Protocol):
    """Trains candidates; yields outcomes as they complete (any order)."""

    def evaluate(self, candidates: Sequence[Candidate], job: EvaluationJob) -> Iterator[Outcome]:
        """Trains every candidate and yields one Outcome each."""
        ...

    def close(self) -> None:
        """Releases workers; called when the run ends."""
        ...
