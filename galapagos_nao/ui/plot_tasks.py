"""The plot of a run across a task stream: ``R`` as a heatmap and ACC after each task.

A free function like those of :mod:`galapagos_nao.ui.plot` (and drawn with its
matplotlib helpers); ``gn.plot.tasks()`` calls it with the shared Selection's run.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

from galapagos_nao.core.checks import describe
from galapagos_nao.core.continual import TaskMetrics
from galapagos_nao.ui.plot import FITNESS_CMAP, new_figure

__all__ = ["tasks"]

# The colour bar of each heatmap axes, so that redrawing on the axes adds no second one.
_colour_bars: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _metrics_of(source: Any) -> TaskMetrics:
    """The metrics of a TaskMetrics, a Run or anything with ``task_metrics()``."""
    if isinstance(source, TaskMetrics):
        return source
    metrics = source.task_metrics() if hasattr(source, "task_metrics") else None
    if not isinstance(metrics, TaskMetrics):
        raise ValueError(
            f"tasks() needs a run on a task stream or its task_metrics(), got {describe(source)}"
        )
    return metrics


def tasks(source: Any, *, axes: Any = None) -> Any:
    """Draws the accuracy matrix ``R`` (after task i, on task j) and ACC after each task.

    Args:
        source: A :class:`~galapagos_nao.core.continual.TaskMetrics`, or a Run
            started with ``tasks=`` (its ``task_metrics()`` is drawn).
        axes: Two axes to draw on (cleared first): the heatmap's and ACC's;
            when None, a new figure with both.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: if ``source`` has no task metrics.
        ImportError: if matplotlib is not installed.
    """
    metrics = _metrics_of(source)
    if axes is None:
        figure, axes = new_figure(1, 2, figsize=(11.0, 4.2))
    else:
        for ax in axes:
            ax.clear()
        figure = axes[0].figure
    heat, line = axes
    rows, columns = len(metrics.matrix), len(metrics.task_names)
    if rows:
        # Only what was learned by each row is coloured: a task not yet learned is
        # measured too (R holds it), but it is not what the run knew.
        learned = [set(metrics.seen(i)) for i in range(rows)]
        shown = [
            [value if j in learned[i] else math.nan for j, value in enumerate(row)]
            for i, row in enumerate(metrics.matrix)
        ]
        image = heat.imshow(
            shown,
            cmap=FITNESS_CMAP,
            vmin=0.0,
            vmax=1.0,
            aspect="auto",
        )
        for i, row in enumerate(shown):
            for j, value in enumerate(row):
                if not math.isnan(value):
                    # Dark text on the bright end of viridis, light on the dark end.
                    colour = "black" if value > 0.6 else "white"
                    heat.text(j, i, f"{value:.2f}", ha="center", va="center", color=colour)
        if heat not in _colour_bars:
            _colour_bars[heat] = figure.colorbar(image, ax=heat, label="test accuracy")
    else:
        heat.text(0.5, 0.5, "no task finished yet", transform=heat.transAxes, ha="center")
    heat.set_xticks(range(columns), metrics.task_names, rotation=30, ha="right")
    heat.set_yticks(range(rows), [f"after {metrics.task_names[t]}" for t in metrics.trained])
    heat.set_xlabel("tested on")
    heat.set_title("R: accuracy of the best elite")
    history = metrics.acc_history
    line.plot(range(1, rows + 1), history, marker="o", color="tab:blue", label="ACC")
    line.set_xlim(0.5, max(rows, 1) + 0.5)
    line.set_ylim(0.0, 1.05)
    line.set_xticks(range(1, rows + 1))
    line.set_xlabel("tasks learned")
    line.set_ylabel("ACC (mean over tasks seen)")
    acc, bwt = metrics.acc, metrics.bwt
    if acc is not None:
        line.annotate(f"{acc:.3f}", (rows, acc), textcoords="offset points", xytext=(0, 8))
    final = "" if acc is None else f" · final ACC {acc:.3f}"
    line.set_title("ACC over time" + final + ("" if bwt is None else f" · BWT {bwt:+.3f}"))
    return figure
