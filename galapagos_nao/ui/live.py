"""The live notebook view: a widget that follows a run while it trains (the ``notebook`` extra).

In a Jupyter kernel, displaying a :class:`~galapagos_nao.run.loop.Run` or a
:class:`~galapagos_nao.archive.selection.Selection` shows a
:class:`~galapagos_nao.ui.live_widget.LiveView` (an anywidget) instead of a
static table. A :class:`~galapagos_nao.ui.live_follow.Follower` thread refreshes its state (see
:mod:`~galapagos_nao.ui.live_state`) about once a second, and at once when a
candidate finishes, a generation ends or the archive is steered; the kernel
stays free, so a cell that pins a cell or puts Parameters runs meanwhile.
While it follows, the lines background threads log go into the view's events,
not under whichever cell ran last. It stops, and leaves no thread, hook or
listener behind, when the run ends or the widget is closed.

The same cell carries the static HTML view too, which nbconvert and GitHub
show where widgets cannot render; a terminal IPython keeps its text views.
anywidget is imported on first use: :func:`view` raises an ImportError naming
the extra, and a display without it falls back to the static view with a note.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import Any

from galapagos_nao.archive.selection import Selection
from galapagos_nao.core.bindings import lookup
from galapagos_nao.run.loop import Run
from galapagos_nao.ui.live_follow import follow_target

__all__ = ["MISSING_ANYWIDGET", "WIDGET_MIME", "in_kernel", "mimebundle", "view"]

#: The message of the ImportError raised when anywidget is not installed.
MISSING_ANYWIDGET = (
    "the live notebook view needs anywidget; install the notebook extra: "
    "pip install 'galapagos-nao[notebook]'"
)
#: The MIME type of a widget in a notebook output.
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# The view following each run or archive, so that showing it again reuses one
# widget and one thread. Weak: a view never keeps a run alive.
_following: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_following_lock = threading.Lock()


def in_kernel() -> bool:
    """True inside a Jupyter kernel (ipykernel), where widgets can show; False in a terminal."""
    ipython = sys.modules.get("IPython")
    shell = None if ipython is None else ipython.get_ipython()
    return getattr(shell, "kernel", None) is not None


def _widget_class() -> Any:
    try:
        from galapagos_nao.ui.live_widget import LiveView
    except ImportError as error:
        raise ImportError(MISSING_ANYWIDGET) from error
    return LiveView


def view(obj: Run | Selection) -> Any:
    """The live view of a run or an archive (the same widget while it follows).

    Display it (the last expression of a cell) to see it; ``.close()`` stops
    it. A run that has ended shows its final state and starts no thread.

    Raises:
        ImportError: naming the ``notebook`` extra when anywidget is missing.
        ValueError: if ``obj`` is neither a Run nor a Selection.
    """
    widget_class = _widget_class()
    follow_target(obj)  # check before anything is made
    with _following_lock:
        current = _following.pop(obj, None)
        if current is not None and current.following:
            _following[obj] = current
            return current
        widget = widget_class(obj)
        if widget.following:  # only a view that follows is shown again; a new one shows the end
            _following[obj] = widget
        return widget


def mimebundle(
    obj: Run | Selection, include: Any = None, exclude: Any = None
) -> dict[str, Any] | None:
    """``_repr_mimebundle_`` of Run and Selection: the live widget inside a kernel.

    IPython adds the text and static HTML views beside it (the fallback where
    widgets cannot render). Outside a kernel it gives nothing, so a terminal
    shows the text view; without anywidget the static view carries a note.
    """
    if not in_kernel() or (include is not None and WIDGET_MIME not in include):
        return None
    if exclude is not None and WIDGET_MIME in exclude:
        return None
    try:
        widget = view(obj)
    except ImportError:
        static = lookup(type(obj), "html")
        body = "" if static is None else static(obj)
        note = "<div><em>For a live view: pip install 'galapagos-nao[notebook]'</em></div>"
        return {"text/html": body + note}
    bundle = widget._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle  # (data, metadata) in anywidget
    return {WIDGET_MIME: data[WIDGET_MIME]}
