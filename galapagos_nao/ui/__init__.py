"""What the user sees: IPython views, plots and progress bars (the top layer).

- :mod:`~galapagos_nao.ui.display`: text and HTML views of networks, the
  archive, the Library and runs; :mod:`~galapagos_nao.ui.tables`: of the
  settings and the experiments; :mod:`~galapagos_nao.ui.layer_table`: a
  network's layers with output shapes and parameter counts;
- :mod:`~galapagos_nao.ui.plot`: matplotlib plots of the archive, its history
  and a network; :mod:`~galapagos_nao.ui.plot_tasks`: a run across a task stream;
- :mod:`~galapagos_nao.ui.progress`: ``run.wait(progress=True)`` bars;
- :mod:`~galapagos_nao.ui.live`: the live notebook view of a run or an archive
  (the ``notebook`` extra, anywidget; imported on first display in a kernel);
- :mod:`~galapagos_nao.ui.watch`: the ``python -m galapagos_nao watch`` terminal
  dashboard (the ``watch`` extra, rich; imported only by the command).

May import every layer below (core, config, archive, store, run); nothing below
imports it. :func:`bind` lends the views and the progress bars to the classes
below; the package root calls it once.
"""

from __future__ import annotations

from galapagos_nao.archive.selection import Selection
from galapagos_nao.core.bindings import bind as _bind
from galapagos_nao.run.loop import Run
from galapagos_nao.ui import display, live, plot, plot_tasks, progress, tables

__all__ = ["bind", "display", "live", "plot", "plot_tasks", "progress", "tables"]


def bind() -> None:
    """Lends the IPython views, the live notebook view and ``Run.wait(progress=True)``.

    Text and HTML views go to Network, Selection, Library and Run; the live
    view (a widget, in a notebook) to Run and Selection.
    """
    display.bind_views()
    tables.bind_tables()
    _bind(Run, "mimebundle", live.mimebundle)
    _bind(Selection, "mimebundle", live.mimebundle)
    _bind(Run, "watch", progress.watch)
