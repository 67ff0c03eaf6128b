"""Failed candidates, summed up: one line per generation, and generations that fail outright.

A burst of identical failures (a missing GPU, a timeout set too low) is one
line with a count per reason, not a thousand. A generation in which *every*
candidate failed is not the end of a run: its parents stay, the run waits a
little longer each time and tries again, and only after
``orchestration.max_failed_generations`` such generations in a row does it stop,
with :class:`GenerationsFailing` naming the cause.

A generation that has nothing to train never ends a run either
(:class:`Retries`): when the Selection is empty, every parent has favor 0, or
every child was dropped at breeding (``max_layers``, ``forbid``, vetoes, a
failing ``mutate``), the archive keeps its parents and its queue, the run says
why in one line and waits for the person to steer (or for a luckier draw).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Sequence

from galapagos_nao.run.records import Outcome

__all__ = [
    "BACKOFF_SECONDS",
    "IDLE_POLL_SECONDS",
    "GenerationsFailing",
    "Retries",
    "count_reasons",
    "failed_generation_message",
    "failure_backoff",
    "failure_summary",
]

logger = logging.getLogger("galapagos_nao.run")

#: Wait before retrying after the first generation that failed entirely; it doubles each time.
BACKOFF_SECONDS = 0.5
#: The longest wait between retries.
MAX_BACKOFF_SECONDS = 30.0
#: How often a run with nothing to breed (empty Selection, favor 0 everywhere) looks again.
IDLE_POLL_SECONDS = 0.5


class GenerationsFailing(RuntimeError):
    """Too many generations in a row in which every candidate failed; the run stopped."""


def failure_summary(outcomes: Sequence[Outcome]) -> str:
    """The failures' reasons, most frequent first: ``"timeout after 1 s (×3), out of memory"``."""
    return count_reasons(o.failure for o in outcomes if o.failure is not None)


def count_reasons(reasons: Iterable[str]) -> str:
    """Reasons, most frequent first, each once with its count: ``"a (×3), b"``."""
    counts = Counter(reasons)
    parts = [reason if n == 1 else f"{reason} (×{n})" for reason, n in counts.most_common()]
    return ", ".join(parts)


def failure_backoff(consecutive: int) -> float:
    """Seconds to wait after the ``consecutive``-th generation in a row that failed entirely."""
    return min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2 ** max(0, consecutive - 1))


def failed_generation_message(
    generation: int, outcomes: Sequence[Outcome], in_a_row: int, limit: int
) -> str:
    """``Generation 3: all 4 candidates failed (<reasons>); 2 of 3 such generations in a row``."""
    return (
        f"Generation {generation}: all {len(outcomes)} candidates failed "
        f"({failure_summary(outcomes)}); {in_a_row} of {limit} such generations in a row"
    )


class Retries:
    """A run's generations that trained nothing: how long it waits, and what it says.

    Args:
        stop_event: The run's; ``stop()`` ends every wait.
    """

    def __init__(self, stop_event: threading.Event) -> None:
        self._stop_event = stop_event
        #: Generations in a row in which every candidate failed.
        self.failed_in_a_row = 0
        self._idle_reason: str | None = None
        self._idle_in_a_row = 0

    @property
    def idle(self) -> bool:
        """True while the run is waiting for something to breed."""
        return self._idle_reason is not None

    def trained(self) -> None:
        """A generation trained and was selected: the counts start again."""
        self.failed_in_a_row = 0
        self._idle_reason, self._idle_in_a_row = None, 0

    def failed(self, generation: int, outcomes: Sequence[Outcome], limit: int) -> None:
        """Logs a generation whose candidates all failed, then backs off.

        Raises:
            GenerationsFailing: on the ``limit``-th such generation in a row.
        """
        self.failed_in_a_row += 1
        message = failed_generation_message(generation + 1, outcomes, self.failed_in_a_row, limit)
        if self.failed_in_a_row >= limit:
            raise GenerationsFailing(message)
        delay = failure_backoff(self.failed_in_a_row)
        logger.warning("%s; trying again in %.1f s", message, delay)
        self._stop_event.wait(delay)  # stop() ends the wait

    def nothing_to_breed(self, generation: int, reason: str) -> None:
        """Waits a moment for steering; says ``reason`` once, when it starts or changes.

        For an empty Selection or favor 0 everywhere: nothing is drawn, so the
        run looks again every :data:`IDLE_POLL_SECONDS`.
        """
        if reason != self._idle_reason:
            logger.warning(
                "Generation %d: nothing breeds: %s; the run waits (run.stop() stops it)",
                generation + 1,
                reason,
            )
            self._idle_reason = reason
        self._stop_event.wait(IDLE_POLL_SECONDS)

    def nothing_bred(self, generation: int, dropped: Sequence[str]) -> None:
        """Every child was dropped at breeding: says why in one line, then backs off."""
        self._idle_in_a_row += 1
        delay = failure_backoff(self._idle_in_a_row)
        reason = f"no child could be bred: {count_reasons(dropped)}"
        logger.warning(
            "Generation %d: %s; its parents and queue stay; breeding again in %.1f s",
            generation + 1,
            reason,
            delay,
        )
        self._idle_reason = reason
        self._stop_event.wait(delay)
