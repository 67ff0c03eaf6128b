"""Failed candidates, summed up: one line per generation, and generations that fail outright.

A burst of identical failures (a missing GPU, a timeout set too low) is one
line with a count per reason, not a thousand. A generation in which *every*
candidate failed is not the end of a run: its parents stay, the run waits a
little longer each time and tries again, and only after
``orchestration.max_failed_generations`` such generations in a row does it stop,
with :class:`GenerationsFailing` naming the cause.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from galapagos_nao.run.records import Outcome

__all__ = [
    "BACKOFF_SECONDS",
    "GenerationsFailing",
    "failed_generation_message",
    "failure_backoff",
    "failure_summary",
]

#: Wait before retrying after the first generation that failed entirely; it doubles each time.
BACKOFF_SECONDS = 0.5
#: The longest wait between retries.
MAX_BACKOFF_SECONDS = 30.0


class GenerationsFailing(RuntimeError):
    """Too many generations in a row in which every candidate failed; the run stopped."""


def failure_summary(outcomes: Sequence[Outcome]) -> str:
    """The failures' reasons, most frequent first: ``"timeout after 1 s (×3), out of memory"``."""
    counts = Counter(o.failure for o in outcomes if o.failure is not None)
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
