"""Plots of the archive, its history and a network (matplotlib, the ``plot`` extra).

Free functions in the pyribs manner: each draws on ``ax`` when given (clearing
it first, so passing the same axes again refreshes the plot in place) or on a
new figure, and returns the figure. matplotlib is imported on first use; without
it they raise an ImportError naming the extra to install.

- :func:`archive`: a bar of elite fitness per level for one measure, a heatmap
  of the cells for two;
- :func:`history`: QD-score, coverage and best fitness against generation and time;
- :func:`network`: the layer stack with output shapes and parameter counts.
"""

from __future__ import annotations

import math
import weakref
import zlib
from collections.abc import Sequence
from typing import Any

from galapagos_nao.archive.history import HistoryEntry
from galapagos_nao.archive.selection import Selection
from galapagos_nao.core.checks import check_choice, describe
from galapagos_nao.core.measures import Grid, measure
from galapagos_nao.core.network import Network
from galapagos_nao.ui.display import stats_line
from galapagos_nao.ui.layer_table import layer_rows
from galapagos_nao.ui.plot_marks import draw_curation_marks, run_starts, task_switches

__all__ = ["archive", "history", "layer_colour", "network", "new_figure", "run_starts"]

#: Colour of empty cells and of text on light backgrounds.
EMPTY_COLOUR = "#eeeeee"
#: Colour map of elite fitness in :func:`archive`.
FITNESS_CMAP = "viridis"
#: Fixed colours of the built-in layer types and the ends in :func:`network`, so a
#: type looks the same in every plot; other types get a tab10 colour from their name.
LAYER_COLOURS = {
    "input": "tab:gray",
    "head": "tab:brown",
    "dense": "tab:blue",
    "activation": "tab:orange",
    "dropout": "tab:green",
    "batch_norm": "tab:red",
    "leaky_relu": "tab:purple",
    "flatten": "tab:olive",
}
_OTHER_COLOURS = ("tab:pink", "tab:cyan", "gold", "teal", "navy", "salmon")

# The QD-score axis twinned onto each history axes, removed when it is redrawn.
_twins: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "gn.plot needs matplotlib; install the plot extra: pip install 'galapagos-nao[plot]'"
        ) from error
    return plt


def new_figure(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots(*args, layout="constrained", **kwargs)``, shown once in a notebook.

    The inline backend of a notebook shows every pyplot figure at the end of
    the cell, and the cell's result shows the figure returned: the same plot
    twice. There, the figure is taken out of pyplot so that only the result
    shows it (assign it and it shows when displayed). Elsewhere it stays in
    pyplot, so that ``plt.show()`` and interactive windows work as usual.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(*args, layout="constrained", **kwargs)
    if "inline" in plt.get_backend():
        plt.close(figure)
    return figure, axes


def _figure_and_axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    if ax is None:
        return new_figure(figsize=figsize)
    ax.clear()
    return ax.figure, ax


def _edge_labels(grid: Grid, axis: int) -> list[str]:
    """Tick labels: the level, and the values it holds (whole numbers for an integer measure)."""
    edges = grid.edges[axis]
    if not measure(grid.measures[axis]).integer:
        return [f"{level}\n≤{edge:.3g}" for level, edge in enumerate(edges, start=1)]
    labels = []
    for index, edge in enumerate(edges):
        # A level holds the whole numbers above the previous edge, up to its own.
        low = 0 if index == 0 else math.floor(edges[index - 1]) + 1
        high = math.floor(edge)
        held = "none" if high < low else str(low) if high == low else f"{low}–{high}"
        labels.append(f"{index + 1}\n{held}")
    return labels


def _axis_label(grid: Grid, axis: int) -> str:
    return f"level of {measure(grid.measures[axis]).label} (and the values it holds)"


def _fitness_norm(values: Sequence[float]) -> Any:
    """Colour limits from the archive's own fitness range, so 0.92 and 0.975 differ."""
    from matplotlib.colors import Normalize

    present = [v for v in values if not math.isnan(v)]
    if not present:
        return Normalize(0.0, 1.0)
    low, high = min(present), max(present)
    if high - low < 1e-3:  # one elite, or all equal: a small band around it
        low, high = low - 0.005, high + 0.005
    return Normalize(low, high)


def _accuracy(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _value(net: Network, metric: str) -> float:
    value = getattr(net, metric)
    return math.nan if value is None else float(value)


def _elite_positions(
    elites: dict[Any, Network], grid: Grid
) -> list[tuple[tuple[int, ...], Network]]:
    """Zero-based grid positions of the elites whose cells fit ``grid``."""
    positions = []
    for cell, net in elites.items():
        levels = cell if isinstance(cell, tuple) else (cell,)
        fits = len(levels) == len(grid.levels) and all(
            1 <= level <= count for level, count in zip(levels, grid.levels, strict=True)
        )
        if fits:  # a cell drawn under other settings waits for the next selection
            positions.append((tuple(level - 1 for level in levels), net))
    return positions


def archive(selection: Selection, *, ax: Any = None, metric: str = "val_acc") -> Any:
    """Draws the archive: elite fitness per level (one measure) or per cell (two).

    Args:
        selection: The archive (``gn.plot`` passes the shared ``gn.Selection`` when None).
        ax: Matplotlib axes to draw on (cleared first); a new figure when None.
        metric: ``"val_acc"`` (the fitness) or ``"test_acc"``.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: if ``metric`` is unknown or the archive has more than two measures.
        ImportError: if matplotlib is not installed.
    """
    check_choice("metric", metric, ["val_acc", "test_acc"])
    grid = selection.grid()
    if len(grid.measures) > 2:
        raise ValueError(
            f"selection: gn.plot.archive draws one or two measures, got {list(grid.measures)}"
        )
    new_figure = ax is None
    figure, ax = _figure_and_axes(ax, (6.4, 4.0) if len(grid.measures) == 1 else (6.4, 5.0))
    positions = _elite_positions(selection.elites(), grid)
    norm = _fitness_norm([_value(net, metric) for _, net in positions])
    if len(grid.measures) == 1:
        _archive_bars(ax, grid, positions, metric, norm)
    else:
        _archive_heatmap(ax, grid, positions, metric, norm)
    if new_figure and positions:
        # Beside the axes, not over the data; on the caller's axes a colour bar
        # would pile up at each refresh.
        mappable = _pyplot().cm.ScalarMappable(norm=norm, cmap=FITNESS_CMAP)
        figure.colorbar(mappable, ax=ax, label=f"{metric} (this archive's range)")
    draw_curation_marks(ax, selection.curation(), grid.levels)
    ax.set_title(f"Archive · {stats_line(selection.stats())}", fontsize="small")
    if not positions:
        ax.text(0.5, 0.5, "empty archive", transform=ax.transAxes, ha="center", va="center")
    return figure


def _archive_bars(
    ax: Any,
    grid: Grid,
    positions: Sequence[tuple[tuple[int, ...], Network]],
    metric: str,
    norm: Any,
) -> None:
    levels = grid.levels[0]
    heights = [math.nan] * levels
    for (index,), net in positions:
        heights[index] = _value(net, metric)
    x = list(range(levels))
    cmap = _pyplot().get_cmap(FITNESS_CMAP)
    colours = [EMPTY_COLOUR if math.isnan(h) else cmap(norm(h)) for h in heights]
    ax.bar(x, [0.0 if math.isnan(h) else h for h in heights], color=colours)
    # The y range is the archive's own, so close fitnesses show different heights.
    span = norm.vmax - norm.vmin
    bottom, top = max(0.0, norm.vmin - 0.5 * span), min(1.0, norm.vmax) + 0.25 * span
    for index, height in enumerate(heights):
        text = "empty" if math.isnan(height) else f"{height:.3f}"
        ax.text(index, bottom if math.isnan(height) else height, text, ha="center", va="bottom")
    ax.set_xticks(x, _edge_labels(grid, 0))
    ax.set_xlim(-0.6, levels - 0.4)
    ax.set_ylim(bottom, top)
    ax.set_xlabel(_axis_label(grid, 0))
    ax.set_ylabel(metric)


def _archive_heatmap(
    ax: Any,
    grid: Grid,
    positions: Sequence[tuple[tuple[int, ...], Network]],
    metric: str,
    norm: Any,
) -> Any:
    import numpy as np

    rows, columns = grid.levels
    values = np.full((rows, columns), np.nan)
    for (row, column), net in positions:
        values[row, column] = _value(net, metric)
    ax.set_facecolor(EMPTY_COLOUR)  # empty cells are NaN and show the background
    colours = ax.imshow(
        np.ma.masked_invalid(values), origin="lower", cmap=FITNESS_CMAP, norm=norm, aspect="auto"
    )
    for (row, column), value in np.ndenumerate(values):
        if not np.isnan(value):
            colour = "black" if norm(value) > 0.6 else "white"  # readable on viridis
            ax.text(
                column,
                row,
                f"{value:.3f}",
                ha="center",
                va="center",
                color=colour,
                fontsize="small",
            )
    ax.set_xticks(range(columns), _edge_labels(grid, 1))
    ax.set_yticks(range(rows), _edge_labels(grid, 0))
    ax.set_xlabel(_axis_label(grid, 1))
    ax.set_ylabel(_axis_label(grid, 0))
    return colours


def history(selection: Selection, *, ax: Any = None, x: str = "generation") -> Any:
    """Draws QD-score, coverage and best fitness over the recorded generations.

    Args:
        selection: The archive (``gn.plot`` passes the shared ``gn.Selection`` when None).
        ax: Axes to draw on (cleared first), against ``x``; when None, a new
            figure with one panel against generation and one against time.
        x: ``"generation"`` (the archive's generation, as every view numbers
            it: a second ``evolve`` on the same archive carries on from the first) or
            ``"time"`` (summed wall time of the generations so far).

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: if ``x`` is neither.
        ImportError: if matplotlib is not installed.
    """
    check_choice("x", x, ["generation", "time"])
    entries = selection.history()
    if ax is not None:
        figure, ax = _figure_and_axes(ax, (6.4, 4.0))
        _history_panel(ax, entries, x)
        return figure
    figure, axes = new_figure(1, 2, figsize=(11.0, 4.0))
    _history_panel(axes[0], entries, "generation")
    _history_panel(axes[1], entries, "time")
    return figure


def _time_axis(seconds: Sequence[float]) -> tuple[list[float], str]:
    longest = max(seconds, default=0.0)
    scale, unit = (
        (3600.0, "h") if longest >= 7200 else (60.0, "min") if longest >= 120 else (1.0, "s")
    )
    return [s / scale for s in seconds], unit


def _history_panel(ax: Any, entries: Sequence[HistoryEntry], x: str) -> None:
    old_twin = _twins.pop(ax, None)
    if old_twin is not None:
        old_twin.remove()
    stats = [entry.stats for entry in entries]
    if x == "generation":
        # The archive's generation: the number the log, stats(), the journal and
        # watch show (a later run on the same archive counts on from it).
        xs: list[float] = [
            float(index if s.generation is None else s.generation) for index, s in enumerate(stats)
        ]
        ax.set_xlabel("generation")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no generation 2.5
    else:
        xs, unit = _time_axis([s.elapsed for s in stats])
        ax.set_xlabel(f"time ({unit})")
    best = [math.nan if s.best_fitness is None else s.best_fitness for s in stats]
    ax.plot(xs, [s.coverage for s in stats], marker="o", color="tab:green", label="coverage")
    ax.plot(xs, best, marker="o", color="tab:blue", label="best val_acc")
    for number, start in enumerate(run_starts(entries)):
        ax.axvline(
            (xs[start - 1] + xs[start]) / 2,
            color="tab:gray",
            linestyle="--",
            linewidth=1,
            label="new run" if number == 0 else None,
        )
    for number, switch in enumerate(task_switches(entries)):
        where = (xs[switch - 1] + xs[switch]) / 2
        ax.axvline(
            where,
            color="tab:purple",
            linestyle=":",
            linewidth=1,
            label="task switch" if number == 0 else None,
        )
        ax.text(
            where,
            1.02,
            str(entries[switch].task),
            rotation=90,
            fontsize="x-small",
            va="top",
            ha="right",
            color="tab:purple",
        )
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("coverage, best val_acc")
    twin = ax.twinx()
    _twins[ax] = twin
    twin.plot(xs, [s.qd_score for s in stats], marker="s", color="tab:orange", label="QD-score")
    twin.set_ylabel("QD-score")
    twin.set_ylim(0.0, max([s.cells for s in stats], default=1) * 1.05)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    # Below the axes, in one row: never over the lines, whatever they do.
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=len(handles),
        fontsize="small",
        frameon=False,
    )
    if not stats:
        ax.text(0.5, 0.5, "no generations yet", transform=ax.transAxes, ha="center", va="center")


def layer_colour(name: str) -> str:
    """The colour of layer type ``name`` in :func:`network`: the same in every plot."""
    if name in LAYER_COLOURS:
        return LAYER_COLOURS[name]
    # crc32, not hash(): str hashes change from one process to the next.
    return _OTHER_COLOURS[zlib.crc32(name.encode()) % len(_OTHER_COLOURS)]


def network(net: Network, *, ax: Any = None) -> Any:
    """Draws the layer stack: one box per layer, wider for more features.

    Args:
        net: The network.
        ax: Axes to draw on (cleared first); a new figure when None.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: if ``net`` is not a Network.
        ImportError: if matplotlib is not installed.
    """
    if not isinstance(net, Network):
        raise ValueError(f"net must be a Network, got {describe(net)}")
    rows = layer_rows(net)
    figure, ax = _figure_and_axes(ax, (7.0, 0.45 * len(rows) + 1.0))
    widest = max(math.log10(r.features + 1) for r in rows)
    for position, row in enumerate(rows):
        y = len(rows) - 1 - position  # input at the top
        width = 0.25 + 0.75 * math.log10(row.features + 1) / widest
        colour = layer_colour(row.name)
        ax.barh(y, width, left=-width / 2, height=0.8, color=colour, alpha=0.35, edgecolor=colour)
        name = f"{row.name} {row.params}" if row.params else row.name
        label = f"{name} → {row.shape} · {row.n_params:,} params"
        ax.text(0, y, label, ha="center", va="center", fontsize="small")
    total = sum(r.n_params for r in rows)
    ax.set_title(
        f"{net.complexity} layers · {total:,} parameters · test_acc {_accuracy(net.test_acc)}"
    )
    ax.set_xlim(-0.55, 0.55)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.axis("off")
    return figure
