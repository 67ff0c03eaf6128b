"""The thread behind a live view: follows a run and publishes its state until it ends.

:class:`Follower` hooks into the run and the archive when it starts and takes
every hook, listener and log diversion away when its thread ends, so a view
that stopped leaves nothing behind. Free of any widget library: the widget
(:mod:`~galapagos_nao.ui.live_widget`) hands it a function to publish with.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from galapagos_nao.archive.selection import Selection
from galapagos_nao.run.loop import Run
from galapagos_nao.ui.live_state import EVENTS, EventFeed, live_state
from galapagos_nao.ui.logs import BackgroundDiversion

__all__ = ["POLL_SECONDS", "REFRESH_SECONDS", "Follower", "follow_target"]

logger = logging.getLogger("galapagos_nao.ui")

#: Seconds between refreshes when nothing wakes the view earlier.
REFRESH_SECONDS = 1.0
#: How often the thread looks whether the run ended or the view was closed.
POLL_SECONDS = 0.2


def follow_target(obj: Run | Selection) -> tuple[Selection, Run | None, str]:
    """``(archive, run, title)`` of what a view follows: a Selection follows its last run.

    Raises:
        ValueError: if ``obj`` is neither a Run nor a Selection.
    """
    if isinstance(obj, Run):
        return obj.selection, obj, "Run"
    if isinstance(obj, Selection):
        run = obj.run
        return obj, run if isinstance(run, Run) else None, "Selection"
    raise ValueError(f"obj must be a Run or a Selection, got {type(obj).__name__}")


class Follower:
    """Refreshes a view of a run on a thread of its own until the run ends or it is stopped.

    On start it appends its hooks to the run and its listeners to the
    archive's, the run's and both Parameters' lists, and diverts background
    log lines into the view; when its thread ends it takes all of them away.

    Args:
        obj: The Run or Selection to follow.
        publish: Called with each new state (the widget sets its synced trait).
        refresh: Seconds between refreshes when nothing wakes it.
    """

    def __init__(
        self,
        obj: Run | Selection,
        publish: Callable[[dict[str, Any]], None],
        *,
        refresh: float = REFRESH_SECONDS,
    ) -> None:
        self.selection, self.run, self.title = follow_target(obj)
        self.feed = EventFeed()
        self.feed.recall(self.selection.history()[-EVENTS:])  # what came before the view
        self._publish = publish
        self._refresh = refresh
        self._stopped = threading.Event()
        self._diversion = BackgroundDiversion(lambda line: self.feed.add("log", line))
        self._listened: list[tuple[list[Any], Any]] = []
        self._thread = threading.Thread(target=self._main, name="gn-live", daemon=True)

    def state(self) -> dict[str, Any]:
        """The view's state now."""
        return live_state(self.selection, self.run, self.feed, title=self.title)

    def start(self) -> None:
        """Publishes the state; follows on a thread when the run is still going."""
        self._publish(self.state())
        if self.run is not None and not self.run.done():
            self._attach(self.run)
            self._thread.start()

    @property
    def following(self) -> bool:
        """True while the thread refreshes the view."""
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stops following and waits for the thread to end (not when called from it)."""
        self._stopped.set()
        self.feed.changed.set()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _attach(self, run: Run) -> None:
        run.candidate_hooks.append(self.feed.on_outcome)
        run.hooks.append(self.feed.on_generation)
        for source, owner in (
            ("Selection", self.selection),
            ("Parameters", self.selection.parameters),
            ("Run", run),
        ):
            listener = self.feed.steering(source)
            owner.listeners.append(listener)
            self._listened.append((owner.listeners, listener))
        if run.parameters is not self.selection.parameters:
            listener = self.feed.steering("Parameters")
            run.parameters.listeners.append(listener)
            self._listened.append((run.parameters.listeners, listener))
        self._diversion.attach()

    def _detach(self, run: Run) -> None:
        self._diversion.detach()
        if self.feed.on_outcome in run.candidate_hooks:
            run.candidate_hooks.remove(self.feed.on_outcome)
        if self.feed.on_generation in run.hooks:
            run.hooks.remove(self.feed.on_generation)
        for listeners, listener in self._listened:
            if listener in listeners:
                listeners.remove(listener)
        self._listened.clear()

    def _main(self) -> None:
        run = self.run
        assert run is not None  # started only for a run
        try:
            self._follow(run)
        except Exception as error:  # noqa: BLE001 - a view that fails must not touch the run
            self._detach(run)  # first: the line below must reach the console, not this view
            logger.warning("the live view of %r stopped: %s", run, error)
        else:
            self._detach(run)

    def _follow(self, run: Run) -> None:
        published = -math.inf
        while not self._stopped.is_set():
            # Short waits: the run's end is seen within one, even if nothing else happens.
            woken = self.feed.changed.wait(POLL_SECONDS)
            self.feed.changed.clear()
            ended = run.done()
            if woken or ended or time.monotonic() - published >= self._refresh:
                self._diversion.attach()  # a console handler switched on meanwhile
                self._publish(self.state())
                published = time.monotonic()
            if ended:
                return  # the state just published is the run's last
