"""The steering clock: exactly where in a run a person's change takes effect.

A run reads what a person steers at two points of each generation: before
breeding (the settings snapshot, the parents, favor and vetoes) and before
selection (pins, vetoes, stop). The run passes each point, a *boundary*,
holding its :class:`SteeringClock`; every steering action (``Parameters.put``,
``Selection.pin``, ``run.stop``, …) holds the same clock while it changes its
object and tells its listeners. So an action falls wholly before or wholly
after a boundary, and :meth:`SteeringClock.now` read while holding it is the
:class:`Stamp` of the first boundary that sees the action. The session journal
records that stamp; a replay applies the action at the same boundary of a
seeded rerun (:mod:`galapagos_nao.run.replay`), which is what makes the rerun
exact.

The clock is the outermost lock: it is taken before any object's own lock and
never while holding one, so runs and steering calls cannot deadlock on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

__all__ = ["BREEDING", "PHASES", "SELECTION", "Stamp", "SteeringClock", "holding", "in_order"]

#: The boundary before a generation breeds: settings, parents, favor, vetoes are read.
BREEDING = "breeding"
#: The boundary before a generation's newcomers are selected: pins, vetoes, stop.
SELECTION = "selection"
#: The boundaries of one generation, in the order a run passes them.
PHASES = (BREEDING, SELECTION)


@dataclass(frozen=True)
class Stamp:
    """A boundary of a run: generation ``generation``, before ``phase``."""

    generation: int
    phase: str = BREEDING

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {self.phase!r}")

    def order(self) -> tuple[int, int]:
        """A key that sorts boundaries in the order a run passes them."""
        return (self.generation, PHASES.index(self.phase))

    def __str__(self) -> str:
        return f"{self.generation} {self.phase}"


#: Called on the run's thread at a boundary, holding the clock, before the run reads.
BoundaryListener = Callable[[Stamp], None]


class SteeringClock:
    """The lock runs and steering actions share, and the next boundary a change meets.

    Use ``with clock:`` around a steering change and the notification of its
    listeners; a run passes a boundary with :meth:`boundary`.

    Attributes:
        boundary_listeners: Called at every boundary with its stamp, on the
            run's thread, before the run reads (a replay applies its recorded
            actions there).
    """

    def __init__(self) -> None:
        # Re-entrant: a steering call made while holding the clock (a replay at a
        # boundary, a session queueing its start networks) takes it again.
        self._lock = threading.RLock()
        self._next = Stamp(0, BREEDING)
        self.boundary_listeners: list[BoundaryListener] = []

    def __enter__(self) -> Stamp:
        self._lock.acquire()
        return self._next

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()

    def now(self) -> Stamp:
        """The first boundary an action made now takes effect at."""
        with self._lock:
            return self._next

    def start_at(self, stamp: Stamp) -> None:
        """Sets the next boundary (a run starting at ``stamp.generation``)."""
        with self._lock:
            self._next = stamp

    @contextmanager
    def boundary(self, stamp: Stamp, then: Stamp) -> Iterator[None]:
        """Holds the clock at boundary ``stamp``; afterwards changes count from ``then``.

        The boundary listeners are called first, then the body reads; ``then``
        applies however the body ends.
        """
        with self._lock:
            self._next = stamp
            try:
                for listener in list(self.boundary_listeners):
                    listener(stamp)
                yield
            finally:
                self._next = then


def in_order(clocks: Iterable[SteeringClock]) -> list[SteeringClock]:
    """The distinct ``clocks`` in one fixed order: whoever holds several takes them so."""
    distinct = {id(clock): clock for clock in clocks}
    return [distinct[key] for key in sorted(distinct)]


@contextmanager
def holding(clocks: Iterable[SteeringClock]) -> Iterator[None]:
    """Holds every clock of ``clocks`` (a run's archive and settings may have two)."""
    with ExitStack() as stack:
        for clock in in_order(clocks):
            stack.enter_context(clock)
        yield
