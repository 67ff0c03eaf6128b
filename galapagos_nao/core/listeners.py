"""Listener lists: how a shared object tells whoever asked that it was steered.

``gn.Parameters``, ``gn.Selection`` and ``gn.Library`` sit below the session
journal in the package's layers, so they cannot call it. Each instance owns a
:class:`Listeners` list instead; the session appends the journal's recorder to
it (nothing subscribes by being imported), and every successful steering call
notifies the list after its change, outside the object's lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Listener", "Listeners"]

logger = logging.getLogger("galapagos_nao")

#: ``(action, arguments) -> None``: called after a steering action succeeded.
Listener = Callable[[str, Mapping[str, Any]], None]


class Listeners(list[Listener]):
    """The listeners of one object, called in order with each action it performed."""

    def notify(self, action: str, arguments: Mapping[str, Any]) -> None:
        """Calls every listener; one that raises is logged, the others still run.

        The action already happened, so a failing listener (a journal whose file
        went read-only) must not turn it into an error for the caller.
        """
        for listener in list(self):
            try:
                listener(action, arguments)
            except Exception:  # noqa: BLE001 - logged; the action stands
                logger.exception("a listener of %s failed", action)
