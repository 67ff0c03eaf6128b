"""What the package's log lines look like at a prompt: levels, the console handler, warnings.

Library code only logs (logger ``galapagos_nao``); this module decides what a
person sees. Three levels, set with :func:`log_level`:

- ``"generation"`` (the examples' default): one summary line per generation;
- ``"candidate"``: also the seed's lines, ``Generations remaining: N`` and one
  ``Epoch 0. Loss: …`` line per candidate (logger ``galapagos_nao.candidates``);
- ``"quiet"``: warnings and errors only.

Warnings and errors reach stderr even when nobody switched console logging on
(:func:`install_warnings_handler`, called by the package root), and never twice.
While a notebook's live view follows a run, :class:`BackgroundDiversion` hands
the lines that background threads log to the view instead of stderr, where a
kernel would print them under whichever cell ran last.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from galapagos_nao.core.checks import check_choice
from galapagos_nao.run.records import CANDIDATE_LOGGER

__all__ = [
    "CANDIDATE_LOGGER",
    "BackgroundDiversion",
    "LEVELS",
    "PACKAGE_LOGGER",
    "ConsoleHandler",
    "enable_console_logging",
    "install_warnings_handler",
    "log_level",
]

#: The package's logger; every module logs below it.
PACKAGE_LOGGER = "galapagos_nao"
#: The levels :func:`log_level` takes.
LEVELS = ("generation", "candidate", "quiet")


class ConsoleHandler(logging.StreamHandler):
    """Writes each record to whatever ``sys.stderr`` is at that moment.

    IPython kernels and pytest swap ``sys.stderr``; binding the stream once
    would send later records to a stale (possibly closed) stream.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always sys.stderr


class _WarningsHandler(ConsoleHandler):
    """Shows WARNING and above when nothing else would show them.

    Python's own last-resort handler stays silent once any handler is attached,
    so without this a fallback to the bundled data or a read-only workspace
    would go unseen. It steps aside when the package logger has a console
    handler of its own or the application configured the root logger (the
    record reaches the user through those, and would otherwise show twice).
    """

    def __init__(self) -> None:
        super().__init__()
        self.setLevel(logging.WARNING)
        self.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        # A filter, not an emit override: it still applies while progress bars
        # redirect the console handlers' output.
        self.addFilter(_not_shown_elsewhere)


def _not_shown_elsewhere(record: logging.LogRecord) -> bool:
    package = logging.getLogger(PACKAGE_LOGGER)
    console = any(
        isinstance(h, ConsoleHandler) and not isinstance(h, _WarningsHandler)
        for h in package.handlers
    )
    return not console and not logging.getLogger().handlers


def install_warnings_handler() -> None:
    """Lets warnings and errors reach stderr without any setup (idempotent)."""
    package = logging.getLogger(PACKAGE_LOGGER)
    if not any(isinstance(h, _WarningsHandler) for h in package.handlers):
        package.addHandler(_WarningsHandler())


def enable_console_logging(level: int = logging.INFO) -> None:
    """Shows the ``galapagos_nao`` log lines on stderr, once (idempotent).

    The examples turn this on with the ``"generation"`` level; library code
    never prints by itself.
    """
    package = logging.getLogger(PACKAGE_LOGGER)
    package.setLevel(level)
    if not any(type(h) is ConsoleHandler for h in package.handlers):
        handler = ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        package.addHandler(handler)


def log_level(level: str) -> None:
    """Sets how much a run says: ``"generation"``, ``"candidate"`` or ``"quiet"``.

    Switches console logging on for the first two.

    Raises:
        ValueError: naming the level when it is not one of :data:`LEVELS`.
    """
    check_choice("level", level, LEVELS)
    candidates = logging.getLogger(CANDIDATE_LOGGER)
    if level == "quiet":
        logging.getLogger(PACKAGE_LOGGER).setLevel(logging.WARNING)
        candidates.setLevel(logging.NOTSET)
        return
    enable_console_logging(logging.INFO)
    candidates.setLevel(logging.NOTSET if level == "candidate" else logging.WARNING)


class _Diverted(logging.Filter):
    """The last filter of one console handler: background lines go to a sink instead."""

    def __init__(self, handler: logging.Handler, sink: Callable[[str], None]) -> None:
        super().__init__()
        self._handler = handler
        self._sink = sink

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        if record.thread == threading.main_thread().ident:
            return True  # a cell's own call: its line stays under that cell
        try:
            self._sink(self._handler.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into the run
            return True  # shown on the console, then, rather than lost
        return False


class BackgroundDiversion:
    """Hands the console lines of background threads to ``sink`` instead of stderr.

    A filter is added last to each console handler of the package logger, so a
    record is diverted only where that handler would have shown it (the
    warnings handler's own filter runs first), and once. Lines logged on the
    main thread (a cell's own call) stay where they are. :meth:`attach` is
    called again at every refresh of a view, so that a console handler switched
    on later (``gn.log_level``) is diverted too; :meth:`detach` puts all back.

    Args:
        sink: Called with each diverted line, as the handler would have written it.
    """

    def __init__(self, sink: Callable[[str], None]) -> None:
        self._sink = sink
        self._filters: dict[logging.Handler, _Diverted] = {}

    def attach(self) -> None:
        """Diverts every console handler the package logger has now (idempotent)."""
        for handler in logging.getLogger(PACKAGE_LOGGER).handlers:
            if isinstance(handler, ConsoleHandler) and handler not in self._filters:
                self._filters[handler] = _Diverted(handler, self._sink)
                handler.addFilter(self._filters[handler])

    def detach(self) -> None:
        """Stops diverting: the handlers write to stderr again."""
        for handler, diverted in self._filters.items():
            handler.removeFilter(diverted)
        self._filters.clear()
