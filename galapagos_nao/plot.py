"""``gn.plot``: the plots of :mod:`galapagos_nao.ui.plot`, drawing ``gn.Selection`` by default."""

from __future__ import annotations

from typing import Any

import galapagos_nao as _gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.ui import plot as _plot
from galapagos_nao.ui.plot import EMPTY_COLOUR, network
from galapagos_nao.ui.plot_tasks import tasks as _tasks

__all__ = ["EMPTY_COLOUR", "archive", "history", "network", "tasks"]


def _or_shared(selection: Selection | None) -> Selection:
    return _gn.Selection if selection is None else selection


def archive(selection: Selection | None = None, *, ax: Any = None, metric: str = "val_acc") -> Any:
    """:func:`galapagos_nao.ui.plot.archive` of ``selection`` (``gn.Selection`` when None)."""
    return _plot.archive(_or_shared(selection), ax=ax, metric=metric)


def history(selection: Selection | None = None, *, ax: Any = None, x: str = "generation") -> Any:
    """:func:`galapagos_nao.ui.plot.history` of ``selection`` (``gn.Selection`` when None)."""
    return _plot.history(_or_shared(selection), ax=ax, x=x)


def tasks(source: Any = None, *, axes: Any = None) -> Any:
    """:func:`galapagos_nao.ui.plot_tasks.tasks` of ``source``.

    ``source`` is a Run on a task stream, its ``task_metrics()`` or a Selection
    (its last run); None means ``gn.Selection``'s last run.
    """
    if source is None or isinstance(source, Selection):
        source = _or_shared(source).run
    return _tasks(source, axes=axes)
