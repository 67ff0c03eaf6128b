"""Progress bars for ``run.wait(progress=True)``: generations and candidates, via tqdm.

The run's own thread never draws anything: hooks only count (under a lock), and
the bars are drawn by the thread that waits, so a background run stays silent
at the prompt. ``tqdm.auto`` picks a terminal bar or a notebook widget.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

from galapagos_nao.run.generation import children_per_generation
from galapagos_nao.run.loop import GenerationReport, Run
from galapagos_nao.run.records import Outcome
from galapagos_nao.ui.logs import PACKAGE_LOGGER, ConsoleHandler

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
        timeout: Seconds to wait at most; None waits for the end. Ctrl-C
            propagates (``Run.wait`` turns it into one line).
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
            _logs_above_bars(tqdm),
            # Counted from where the run is: its rate is not the jump to it.
            tqdm(
                total=run.generations,
                initial=run.status().completed,
                desc="generations",
                unit="gen",
                file=file,
            ) as generations,
            tqdm(
                total=expected_candidates(run),
                desc="candidates",
                unit="net",
                file=file,
                leave=False,
            ) as candidates,
        ):
            try:
                return _follow(run, counter, generations, candidates, deadline)
            except KeyboardInterrupt:
                # Ctrl-C: both bars go, so the line Run.wait prints starts a clean line.
                generations.leave = False
                raise
    finally:
        run.candidate_hooks.remove(counter.on_outcome)
        run.hooks.remove(counter.on_generation)


@contextlib.contextmanager
def _logs_above_bars(tqdm: Any) -> Iterator[None]:
    """While bars are drawn, the package's console lines are written above them.

    Each console handler keeps its level, filters and format; only where its
    text goes changes (``tqdm.write`` clears the bars, writes, redraws), and it
    is put back afterwards.
    """
    handlers = [
        h for h in logging.getLogger(PACKAGE_LOGGER).handlers if isinstance(h, ConsoleHandler)
    ]

    def writer(handler: logging.Handler) -> Any:
        def emit(record: logging.LogRecord) -> None:
            try:
                tqdm.write(handler.format(record), file=sys.stderr)
            except Exception:  # noqa: BLE001 - logging must never raise into the run
                handler.handleError(record)

        return emit

    for handler in handlers:
        handler.emit = writer(handler)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for handler in handlers:
            del handler.emit  # the class's own emit again


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
        # Sleep, not run.join: join answers Ctrl-C itself, and here Run.wait must see it.
        time.sleep(wait)
        ended = run.done()
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
        generations.update(status.completed - generations.n)
        if ended or (deadline is not None and time.monotonic() >= deadline):
            return ended
