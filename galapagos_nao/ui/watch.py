"""The ``watch`` dashboard: a live terminal view of a run, from another process (``rich``).

``python -m galapagos_nao watch [--workspace PATH]`` polls the workspace with a
:class:`~galapagos_nao.store.watch_reader.WorkspaceReader` about once a second
and draws each :class:`~galapagos_nao.store.watch_snapshot.WatchSnapshot`: the
run's state and rate, the archive grid (each cell's elite fitness, ``P`` for a
pinned cell, ``×w`` for its favor), coverage, QD-score and best fitness as
sparklines over the last generations, and the latest events. The drawing is
:func:`render`, a pure function of the snapshot; :func:`watch` is the loop.

rich is the ``watch`` extra, imported on first use: without it the functions
here raise an ImportError naming ``pip install 'galapagos-nao[watch]'``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from galapagos_nao.store.watch_reader import WorkspaceReader
from galapagos_nao.store.watch_snapshot import CellView, WatchSnapshot

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

__all__ = ["MISSING_RICH", "render", "require_rich", "sparkline", "watch"]

#: The message of the ImportError raised when rich is not installed.
MISSING_RICH = (
    "the watch dashboard needs rich; install the watch extra: pip install 'galapagos-nao[watch]'"
)
#: Eight heights of a sparkline bar, lowest first.
BARS = "▁▂▃▄▅▆▇█"
#: Width of the sparklines, in generations.
SPARK_WIDTH = 48
#: Colour of each run state.
STATE_STYLES = {
    "running": "bold green",
    "finished": "bold blue",
    "stopped": "bold yellow",
    "idle": "yellow",
    "waiting": "cyan",
}
#: Colour of each event kind.
EVENT_STYLES = {
    "new": "green",
    "replaced": "cyan",
    "held back": "magenta",
    "re-binned": "blue",
    "task": "bold blue",
    "failed": "red",
    "journal": "yellow",
}


def require_rich() -> None:
    """Imports rich or fails with the extra to install.

    Raises:
        ImportError: naming the ``galapagos-nao[watch]`` extra.
    """
    try:
        import rich  # noqa: F401
    except ImportError:
        raise ImportError(MISSING_RICH) from None


def sparkline(values: Sequence[float | None], width: int = SPARK_WIDTH) -> str:
    """The last ``width`` values as bars scaled between their min and max; None is a gap."""
    shown = list(values)[-width:]
    known = [value for value in shown if value is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    top = len(BARS) - 1
    bars = []
    for value in shown:
        if value is None:
            bars.append(" ")
        elif high == low:
            bars.append(BARS[top // 2])  # flat: a constant is neither low nor high
        else:
            bars.append(BARS[round((value - low) / (high - low) * top)])
    return "".join(bars)


# -- the parts of the dashboard ------------------------------------------------------


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _header(snapshot: WatchSnapshot) -> RenderableType:
    from rich.text import Text

    text = Text.assemble(
        ("Galápagos Nǎo watch  ", "bold"),
        (f"experiment {snapshot.experiment}", "bold cyan"),
        "  ",
        (snapshot.path, "dim"),
        "\n",
    )
    if snapshot.status != "ok":
        label = "no workspace" if snapshot.status == "missing" else "unreadable"
        text.append(f"{label}: {snapshot.message}", style="bold red")
        text.append("  (polling; it is read again as soon as it is there)", style="dim")
        return text
    text.append(snapshot.state, style=STATE_STYLES.get(snapshot.state, "bold"))
    if snapshot.run_id is not None:
        seed = "" if snapshot.seed is None else f", seed {snapshot.seed}"
        text.append(f"  run {snapshot.run_id}{seed}  generation {snapshot.generation}")
        rate = "-" if snapshot.rate is None else f"{snapshot.rate:.1f}"
        text.append(f"  {rate} gen/min  queue {snapshot.queued}")
        if snapshot.written is not None:
            text.append(f"  checkpoint {_ago(snapshot.taken - snapshot.written)}", style="dim")
    writer = "no writer" if snapshot.writer is None else f"writer pid {snapshot.writer}"
    text.append(f"  {writer}", style="dim")
    for problem in snapshot.problems[:2]:
        text.append(f"\n{problem}", style="red")
    return text


def _cell_text(view: CellView, best: float | None) -> Any:
    from rich.text import Text

    if view.network_id is None:
        text = Text("·", style="dim")
    else:
        fitness = "?" if view.fitness is None else f"{view.fitness:.4f}"
        style = "bold green" if view.fitness is not None and view.fitness == best else ""
        text = Text(fitness, style=style)
    marks = ("P" if view.pinned else "") + ("" if view.favor == 1 else f"×{view.favor:g}")
    if marks:
        text.append(f" {marks}", style="bold magenta")
    return text


def _grid(snapshot: WatchSnapshot) -> RenderableType:
    from rich import box
    from rich.table import Table

    best = max((c.fitness for c in snapshot.cells if c.fitness is not None), default=None)
    levels = snapshot.levels
    names = snapshot.measures
    if len(levels) == 1 and len(snapshot.cells) == levels[0]:
        table = Table(box=box.SQUARE, title=f"archive: {names[0]} level", show_header=True)
        for view in snapshot.cells:
            table.add_column(str(view.cell), justify="center")
        table.add_row(*(_cell_text(view, best) for view in snapshot.cells))
        return table
    if len(levels) == 2 and len(snapshot.cells) == levels[0] * levels[1]:
        table = Table(box=box.SQUARE, title=f"archive: {names[0]} (rows) × {names[1]} (columns)")
        table.add_column("", style="dim", justify="right")
        for column in range(1, levels[1] + 1):
            table.add_column(str(column), justify="center")
        for row in range(levels[0]):
            views = snapshot.cells[row * levels[1] : (row + 1) * levels[1]]
            table.add_row(str(row + 1), *(_cell_text(view, best) for view in views))
        return table
    # More axes than a grid can show, or levels the checkpoint does not say: a list.
    table = Table(box=box.SIMPLE, title="archive cells")
    for header in ("cell", "elite", "fitness"):
        table.add_column(header)
    for view in snapshot.cells:
        network = "-" if view.network_id is None else view.network_id[:8]
        table.add_row(str(view.cell), network, _cell_text(view, best))
    return table


def _trends(snapshot: WatchSnapshot) -> RenderableType:
    from rich import box
    from rich.table import Table

    points = snapshot.points[-SPARK_WIDTH:]
    last = points[-1] if points else None
    total = len(snapshot.cells) if snapshot.levels else None
    coverage = f"{snapshot.filled}/{total}" if total else str(snapshot.filled)
    table = Table(box=box.SIMPLE, show_header=False, title="over generations", padding=(0, 1))
    table.add_column("measure", style="bold")
    table.add_column("now", justify="right")
    table.add_column("trend", style="cyan", no_wrap=True)

    def row(name: str, now: str, values: Callable[[Any], float | None]) -> None:
        table.add_row(name, now, sparkline([values(point) for point in points]))

    row("coverage", coverage, lambda p: p.coverage)
    qd = "-" if last is None or last.qd_score is None else f"{last.qd_score:.3f}"
    row("QD-score", qd, lambda p: p.qd_score)
    top = "-" if last is None or last.best_fitness is None else f"{last.best_fitness:.4f}"
    row("best val_acc", top, lambda p: p.best_fitness)
    if points:
        table.caption = f"generations {points[0].generation}..{points[-1].generation}"
    return table


def _events(snapshot: WatchSnapshot) -> RenderableType:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, title="latest events", title_justify="left")
    # Fixed widths for the short columns: at 80 columns only "what" gives way.
    table.add_column("time", style="dim", no_wrap=True, min_width=8)
    table.add_column("gen", justify="right", no_wrap=True, min_width=3)
    table.add_column("event", no_wrap=True, min_width=9)
    table.add_column("what", overflow="ellipsis", no_wrap=True)
    for event in reversed(snapshot.events):  # newest on top: it is where the eye goes
        clock = time.strftime("%H:%M:%S", time.localtime(event.time))
        style = EVENT_STYLES.get(event.kind, "")
        table.add_row(clock, str(event.generation), f"[{style}]{event.kind}[/]", event.text)
    if not snapshot.events:
        table.add_row("", "", "", "nothing yet")
    return table


def render(snapshot: WatchSnapshot) -> RenderableType:
    """The whole dashboard for one snapshot (a rich renderable; pure).

    Raises:
        ImportError: if rich is not installed.
    """
    require_rich()
    from rich.columns import Columns
    from rich.console import Group
    from rich.text import Text

    header = _header(snapshot)
    if snapshot.status != "ok":
        return Group(header)
    if snapshot.run_id is None:
        waiting = Text("no generation checkpointed yet", style="dim")
        return Group(header, waiting, _events(snapshot))
    legend = Text("fitness = validation accuracy · empty   P pinned   ×w favor", style="dim")
    return Group(
        header,
        Columns([_grid(snapshot), _trends(snapshot)], padding=(0, 2)),
        legend,
        _events(snapshot),
    )


def watch(
    path: str | os.PathLike[str],
    *,
    experiment: str = "default",
    interval: float = 1.0,
    console: Console | None = None,
    polls: int | None = None,
) -> int:
    """Draws the dashboard of ``path`` until Ctrl-C (or ``polls`` polls); returns 0.

    Read-only: the workspace is never locked or written, and each poll is one
    short read transaction, so the run writing it does not slow down.

    Args:
        path: The workspace file.
        experiment: The experiment to show.
        interval: Seconds between polls.
        console: Where to draw (a terminal's by default).
        polls: Stop after this many polls (None: until Ctrl-C); 1 prints one frame.

    Raises:
        ImportError: if rich is not installed.
    """
    require_rich()
    from rich.live import Live

    with WorkspaceReader(path, experiment=experiment) as reader:
        try:
            with Live(
                render(reader.poll()),
                console=console,
                auto_refresh=False,
                transient=False,
                vertical_overflow="visible",
            ) as live:
                done = 1
                while polls is None or done < polls:
                    time.sleep(interval)
                    live.update(render(reader.poll()), refresh=True)
                    done += 1
        except KeyboardInterrupt:
            pass  # Ctrl-C is how one leaves a dashboard: the last frame stays on screen
    return 0
