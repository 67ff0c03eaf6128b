"""What the package's log lines look like at a prompt: levels, the console handler, warnings.

Library code only logs (logger ``galapagos_nao``); this module decides what a
person sees. Three levels, set with :func:`log_level`:

- ``"generation"`` (the examples' default): one summary line per generation;
- ``"candidate"``: also the seed's lines, ``Generations remaining: N`` and one
  ``Epoch 0. Loss: …`` line per candidate (logger ``galapagos_nao.candidates``);
- ``"quiet"``: warnings and errors only.

Warnings and errors reach stderr even when nobody switched console logging on
(:func:`install_warnings_handler`, called by the package root), and never twice.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from galapagos_nao.core.checks import check_choice
from galapagos_nao.run.records import CANDIDATE_LOGGER

__all__ = [
    "CANDIDATE_LOGGER",
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
