"""Log records that training emits in another process, carried back and emitted here.

A Ray task and a local worker process train where the user's console is not:
their ``galapagos_nao`` records are collected there (:func:`collecting`), travel
back with the result as ``(logger name, level, message)``, and are emitted on
this process's loggers (:func:`replay`), as if training had run here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

__all__ = ["LogEntry", "collecting", "replay"]

#: One record as it travels: ``(logger name, level, message)``.
LogEntry = tuple[str, int, str]


class _Collect(logging.Handler):
    """Keeps the records training emits, to be replayed where the user is."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[LogEntry] = []

    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102
        self.records.append((record.name, record.levelno, record.getMessage()))


@contextlib.contextmanager
def collecting(level: int) -> Iterator[list[LogEntry]]:
    """Collects the ``galapagos_nao`` records at ``level`` and above into the list it yields.

    While it is open the records go to that list only, not to this process's
    stderr, which is not the user's console (Ray may forward it; a local
    worker's is kept for a crash report).
    """
    root = logging.getLogger("galapagos_nao")
    collect = _Collect(level)
    saved = root.level, root.propagate
    root.addHandler(collect)
    root.setLevel(level)
    root.propagate = False
    try:
        yield collect.records
    finally:
        root.removeHandler(collect)
        root.setLevel(saved[0])
        root.propagate = saved[1]


def replay(logs: Sequence[LogEntry], source: str = __file__) -> None:
    """Emits records collected elsewhere on this process's loggers."""
    for name, level, message in logs:
        target = logging.getLogger(name)
        if target.isEnabledFor(level):
            target.handle(target.makeRecord(name, level, source, 0, message, (), None))
