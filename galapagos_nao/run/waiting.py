"""Waiting on a run: ``join``, ``wait`` (with progress bars) and ``result``; a part of ``Run``.

Ctrl-C in the prompt never breaks a :class:`~galapagos_nao.run.loop.Run`
handle: it ends the waiting, not the run, with one line saying so.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from galapagos_nao.core.bindings import bound
from galapagos_nao.core.network import Network

__all__ = ["Waiting"]


class Waiting:
    """The waits of a Run, which provides the attributes below."""

    selection: Any  # the archive the run evolves
    _ended: float | None  # monotonic time the run ended, None while it runs
    _ended_event: threading.Event
    _error: BaseException | None

    def join(self, timeout: float | None = None) -> bool:
        """Waits for the run to end; True if it has.

        Ctrl-C ends the waiting, not the run: it prints one line and returns
        False, and the handle keeps working.
        """
        return self.wait(timeout)

    def wait(self, timeout: float | None = None, *, progress: bool = False) -> bool:
        """Waits for the run to end, optionally under progress bars; True if it has.

        Args:
            timeout: Seconds to wait at most; None waits for the end.
            progress: Show tqdm bars over generations and candidates (needs
                tqdm, the ``plot`` extra).

        Ctrl-C ends the waiting, not the run: it prints one line saying so and
        returns False; ``run.stop()`` stops the run.
        """
        try:
            if progress:
                return bool(bound(type(self), "watch")(self, timeout))
            return self._ended_event.wait(timeout)
        except KeyboardInterrupt:
            if self.done():
                return True
            # The user's own keypress, answered in the foreground: a print, not a log record.
            # On a line of its own: the terminal echoed ^C, and bars may have left a line open.
            print("\nstill running — run.stop() stops it", file=sys.stderr)
            return False

    def ended_within(self, timeout: float | None = None) -> bool:
        """Waits for the end like :meth:`join`, but lets Ctrl-C through.

        For tools that stop the run themselves on Ctrl-C, like a replay.
        """
        return self._ended_event.wait(timeout)

    def done(self) -> bool:
        """True once the run has ended, for whatever reason."""
        return self._ended is not None

    def result(self, timeout: float | None = None) -> dict[int, Network]:
        """The final elites, waiting for the end; re-raises what killed the run.

        Ctrl-C ends the waiting, not the run, as for :meth:`join`: it prints one
        line saying so and returns the elites so far (a continual run ends only
        at ``run.stop()``).

        Raises:
            TimeoutError: if the run has not ended within ``timeout``.
        """
        try:
            ended = self._ended_event.wait(timeout)
        except KeyboardInterrupt:
            if not self.done():
                print(
                    "\nstill running — these are the elites so far; "
                    "run.stop() stops it, run.result() waits again",
                    file=sys.stderr,
                )
                return self.selection.elites()
            ended = True
        if not ended:
            raise TimeoutError(f"the run did not end within {timeout} s")
        if self._error is not None:
            raise self._error
        return self.selection.elites()
