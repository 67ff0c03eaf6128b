"""Behaviour a higher layer lends to a lower layer's classes, looked up at call time.

A :class:`~galapagos_nao.core.network.Network` can be saved and a ``Run`` can
draw progress bars, but the code that writes files (``store``) and draws
(``ui``) sits above them in the package's layers. Instead of importing up, the
lower class asks this table for the operation by name, and the upper layer's
``bind_*()`` function (called once, explicitly, by ``galapagos_nao/__init__.py``)
fills it in. IPython views work the same way through :class:`Viewable`: without
a renderer an object shows its plain ``repr``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Viewable", "bind", "bound", "lookup", "user_dir"]

_lock = threading.Lock()
_table: dict[tuple[type, str], Callable[..., Any]] = {}


def bind(cls: type, name: str, operation: Callable[..., Any]) -> None:
    """Lends ``operation`` to ``cls`` (and its subclasses) under ``name``; rebinding replaces."""
    with _lock:
        _table[(cls, name)] = operation


def lookup(cls: type, name: str) -> Callable[..., Any] | None:
    """The operation bound to ``cls`` or its nearest base class under ``name``, or None."""
    with _lock:
        for klass in cls.__mro__:
            found = _table.get((klass, name))
            if found is not None:
                return found
    return None


def bound(cls: type, name: str) -> Callable[..., Any]:
    """Like :func:`lookup`, but raises when nothing is bound.

    Raises:
        RuntimeError: naming the class and operation; it happens only when the
            package root was bypassed (``import galapagos_nao`` binds everything).
    """
    found = lookup(cls, name)
    if found is None:
        raise RuntimeError(
            f"{cls.__name__}.{name} is provided by a higher layer of galapagos_nao that is "
            "not bound yet; import galapagos_nao first"
        )
    return found


def user_dir(obj: object, internal: frozenset[str]) -> list[str]:
    """``dir(obj)`` without private names and ``internal`` ones: what ``obj.<Tab>`` offers.

    The shared objects' classes define ``__dir__`` with it, so a user's completion
    shows the user's API; the other methods stay callable (runs and tools use them).
    """
    return sorted(n for n in object.__dir__(obj) if not n.startswith("_") and n not in internal)


class Viewable:
    """Mixin: IPython's text and HTML views, rendered by whatever ``ui`` bound.

    ``ui.display.bind_views()`` binds ``"pretty"`` (``(obj, p, cycle) -> None``)
    and ``"html"`` (``obj -> str``) for each class; until then the plain
    ``repr`` is shown. ``"mimebundle"`` (``(obj, include, exclude) -> dict | None``)
    is bound for the classes with a live notebook view.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # IPython's pretty printer walks the MRO and takes the first class that
        # defines either ``_repr_pretty_`` or ``__repr__`` in its own __dict__; a
        # subclass with its own __repr__ would hide the inherited hook.
        cls._repr_pretty_ = Viewable._repr_pretty_  # type: ignore[method-assign]

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        render = lookup(type(self), "pretty")
        if render is None:
            p.text(repr(self))
        else:
            render(self, p, cycle)

    def _repr_html_(self) -> str | None:
        render = lookup(type(self), "html")
        return None if render is None else render(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
        # A live widget where one is bound and can show (a notebook); None lets
        # IPython fall back to the text and HTML views above.
        render = lookup(type(self), "mimebundle")
        return None if render is None else render(self, include, exclude)
