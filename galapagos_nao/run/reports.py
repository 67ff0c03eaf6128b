"""What a run reports: each generation's :class:`GenerationReport`, its :class:`RunStatus`.

Also the signatures of the hooks that receive them. Kept apart from the loop
(:mod:`galapagos_nao.run.loop`) so that hooks and views can name them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from galapagos_nao.archive.selection import Change
from galapagos_nao.core.network import Network
from galapagos_nao.run.records import Outcome

__all__ = ["CandidateHook", "GenerationHook", "GenerationReport", "RunStatus"]


@dataclass(frozen=True)
class GenerationReport:
    """What one generation did; passed to every hook.

    Attributes:
        run: The run.
        generation: Its index (0-based).
        snapshot: The Parameters snapshot it used.
        outcomes: Every candidate's outcome, in candidate order.
        changes: Cells whose elite changed.
        elites: The archive after selection.
        started: ``time.time()`` at its start.
        seconds: Its wall time.
        train_seconds: Summed time candidates spent training and evaluating.
    """

    run: Any  # the Run (run.loop, above this module)
    generation: int
    snapshot: Mapping[str, Mapping[str, Any]]
    outcomes: tuple[Outcome, ...]
    changes: tuple[Change, ...]
    elites: Mapping[int, Network]
    started: float
    seconds: float
    train_seconds: float

    @property
    def evaluated(self) -> int:
        """Candidates trained successfully."""
        return sum(o.network is not None for o in self.outcomes)

    @property
    def group_sizes(self) -> dict[int, int]:
        """How many candidates trained in groups of each size (1: alone)."""
        counts: dict[int, int] = {}
        for outcome in self.outcomes:
            counts[outcome.group_size] = counts.get(outcome.group_size, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def failed(self) -> int:
        """Candidates dropped for a failure (not counting those stopped)."""
        return sum(o.failure is not None for o in self.outcomes)


@dataclass(frozen=True)
class RunStatus:
    """A run's progress at one moment."""

    state: str  #: starting, running, stopping, finished, stopped or failed
    #: The archive's last completed generation (0-based, counting every run of the
    #: experiment: the number the log, ``stats()``, the history, the journal and
    #: ``watch`` show), or None before the archive has completed one.
    generation: int | None
    generations: int | None  #: this run's total, or None for a continual run
    evaluated: int  #: candidates trained successfully so far
    failed: int  #: candidates dropped so far
    best_test_acc: float | None  #: best test accuracy among the elites
    elapsed: float  #: seconds since the start
    error: BaseException | None = None  #: what killed the run, if it failed
    completed: int = 0  #: generations this run completed (of ``generations``)


#: A generation hook: called on the run's thread with each generation's report.
GenerationHook = Callable[[GenerationReport], None]
#: A candidate hook: called on the run's thread with each outcome as it arrives.
CandidateHook = Callable[[Outcome], None]
