"""Progress bars for ``run.wait(progress=True)``: generations and candidates, via tqdm.

The run's own thread never draws anything: hooks only count (under a lock), and
the bars are drawn by the thread that waits, so a background run stays silent
at the prompt. ``tqdm.auto`` picks a terminal bar or a notebook widget.
"""

from __future__ import annotations

import threading
import time
from typing import IO, Any

from galapagos_nao.run.loop import GenerationReport, Run, children_per_generation
from galapagos_nao.run.records import Outcome

__all__ = ["expected_candidates", "watch"]

#: How often the waiting thread redraws, in seconds.
POLL_SECONDS = 0.1


def _tqdm() -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError as error:
        raise ImportError(
            "run.wait(progress=True) needs tqdm; install the plot extra: "
            "pip install 'galapagos-nao[plot]' (or pip install tqdm)"
        ) from error
    return tqdm


class _Counter:
    """What the run's hooks saw; written from the run's thread, read by the waiter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.generations = 0  # generations ended since watching began
        self.in_generation = 0  # candidates finished in the current generation
        self.last_size = 0  # candidates of the last ended generation

    def on_outcome(self, outcome: Outcome) -> None:
        with self._lock:
            self.in_generation += 1

    def on_generation(self, report: GenerationReport) -> None:
        with self._lock:
            self.generations += 1
            self.last_size = len(report.outcomes)
            self.in_generation = 0

    def read(self) -> tuple[int, int, int]:
        with self._lock:
            return self.generations, self.in_generation, self.last_size


def expected_candidates(run: Run) -> int:
    """Candidates the next generation breeds: one per parent, at least ``generation_size``.

    The Selection's queue is only consumed at the end of a generation, so
    during one this is exact unless networks are queued meanwhile.
    """
    size = run.parameters.settings().orchestration.generation_size
    return children_per_generation(len(run.selection), size)


def watch(run: Run, timeout: float | None = None, *, file: IO[str] | None = None) -> bool:
    """Shows bars over the run's generations and the current generation's candidates.

    Args:
        run: The run to watch.
        timeout: Seconds to wait at most; None waits for the end. Ctrl-C stops
            the waiting, not the run.
        file: Where the bars go; tqdm's default (stderr) when None.

    Returns:
        True if the run has ended.

    Raises:
        ImportError: if tqdm is not installed.
    """
    tqdm = _tqdm()
    counter = _Counter()
    run.candidate_hooks.append(counter.on_outcome)
    run.hooks.append(counter.on_generation)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        with (
            tqdm(total=run.generations, desc="generations", unit="gen", file=file) as generations,
            tqdm(
                total=expected_candidates(run),
                desc="candidates",
                unit="net",
                file=file,
                leave=False,
            ) as candidates,
        ):
            return _follow(run, counter, generations, candidates, deadline)
    finally:
        run.candidate_hooks.remove(counter.on_outcome)
        run.hooks.remove(counter.on_generation)


def _follow(
    run: Run, counter: _Counter, generations: Any, candidates: Any, deadline: float | None
) -> bool:
    seen = 0
    while True:
        wait = (
            POLL_SECONDS
            if deadline is None
            else max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))
        )
        ended = run.join(wait)
        ended_generations, in_generation, last_size = counter.read()
        if ended_generations != seen:
            seen = ended_generations
            # Show the ended generation complete, then start the next one's bar.
            candidates.total = last_size
            candidates.update(last_size - candidates.n)
            candidates.reset(total=expected_candidates(run))
        candidates.update(in_generation - candidates.n)
        status = run.status()
        if status.best_test_acc is not None:
            best = f"best test_acc {status.best_test_acc:.3f}"
            generations.set_postfix_str(best, refresh=False)
        generations.update(status.generation - generations.n)
        if ended or (deadline is not None and time.monotonic() >= deadline):
            return ended
