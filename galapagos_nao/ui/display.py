"""Rich IPython display: text (``_repr_pretty_``) and HTML (``_repr_html_``) views.

``Network``, ``Selection``, ``Library`` and ``Run`` are
:class:`~galapagos_nao.core.bindings.Viewable`: :func:`bind_views` (called by
the package root) lends them the renderers below, so their plain ``repr``
stays the seed's short one-liner while IPython and Jupyter show a table: a
network's layers with output shapes and parameter counts, the archive's
cells, the Library's snapshots, a run's progress and latest metrics. Inside a
container (``gn.Selection.get_all()`` is a dict of networks) a network shows
its one-line repr, as in the seed's session. A network's layer table comes from
:mod:`~galapagos_nao.ui.layer_table` (re-exported here).
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any

from galapagos_nao.archive.history import ArchiveStats
from galapagos_nao.archive.selection import Selection
from galapagos_nao.core.bindings import bind
from galapagos_nao.core.network import Network
from galapagos_nao.run.loop import Run
from galapagos_nao.store.journal import JournalView, describe_arguments
from galapagos_nao.store.library import Library
from galapagos_nao.ui.layer_table import LayerRow, layer_rows

__all__ = [
    "LayerRow",
    "bind_views",
    "journal_html",
    "journal_pretty",
    "layer_rows",
    "library_html",
    "library_pretty",
    "network_html",
    "network_pretty",
    "progress_line",
    "run_html",
    "run_pretty",
    "selection_html",
    "selection_pretty",
]

#: Width of the text progress bar, in characters.
BAR_WIDTH = 20


# -- formatting helpers ---------------------------------------------------------


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _compact(count: int) -> str:
    """``4127616`` as ``4.1M``: multiply-adds span orders of magnitude."""
    for limit, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if count >= limit:
            return f"{count / limit:.1f}{suffix}"
    return str(count)


def _short_id(id: str | None) -> str:  # noqa: A002
    return "-" if id is None else id[:8]


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned with spaces; numbers right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in rows) and bool(rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) or (
        isinstance(value, str) and value.replace(",", "").isdigit()
    )


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain ``<table>`` with every cell escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_block(title: str, lines: Sequence[str], table: str = "") -> str:
    items = "".join(f"<div>{html.escape(line)}</div>" for line in lines)
    return f"<div><strong>{html.escape(title)}</strong>{items}{table}</div>"


def _pretty(p: Any, cycle: bool, short: str, full: Any) -> None:
    # Nested inside a container (p.stack holds the enclosing objects) or in a
    # cycle, keep to the one-liner; the full view is for the object on its own.
    nested = len(getattr(p, "stack", ())) > 1
    p.text(short if cycle or nested else full())


# -- Network --------------------------------------------------------------------

_LAYER_HEADERS = ("#", "layer", "params", "output", "parameters")


def _layer_table_rows(net: Network) -> list[tuple[str, str, str, str, str]]:
    return [
        ("-" if r.index is None else str(r.index), r.name, r.params, r.shape, f"{r.n_params:,}")
        for r in layer_rows(net)
    ]


def _network_lines(net: Network) -> list[str]:
    metrics = (
        f"test_acc {_number(net.test_acc)} · val_acc {_number(net.val_acc)} · "
        f"train_acc {_number(net.train_acc)} · loss {_number(net.loss)}"
    )
    origin = f"generation {'-' if net.generation is None else net.generation}"
    origin += f" · parent {_short_id(net.parent_id)}"
    if net.mutations:
        origin += " · mutations: " + "; ".join(net.mutations)
    total = sum(r.n_params for r in layer_rows(net))
    size = (
        f"{net.complexity} layers · {total:,} parameters · {net.flops:,} multiply-adds per sample"
    )
    return [metrics, size, origin]


def network_text(net: Network) -> str:
    """The full text view: repr, metrics, origin and the layer table."""
    body = text_table(_LAYER_HEADERS, _layer_table_rows(net))
    return "\n".join([repr(net), *_network_lines(net), body])


def network_pretty(net: Network, p: Any, cycle: bool) -> None:
    """``Network._repr_pretty_``."""
    _pretty(p, cycle, repr(net), lambda: network_text(net))


def network_html(net: Network) -> str:
    """``Network._repr_html_``: metrics and the layer table."""
    table = html_table(_LAYER_HEADERS, _layer_table_rows(net))
    return _html_block(f"Network {net.id}", _network_lines(net), table)


# -- Selection ------------------------------------------------------------------

_CELL_HEADERS = (
    "cell",
    "curation",
    "layers",
    "parameters",
    "flops",
    "val_acc",
    "test_acc",
    "generation",
    "id",
)


def _curation_mark(key: Any, pinned: Sequence[Any], favored: Mapping[Any, float]) -> str:
    marks = ["pinned"] if key in pinned else []
    if key in favored:
        marks.append(f"favor {favored[key]:g}")
    return ", ".join(marks) or "-"


def _cell_rows(selection: Selection) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    curation = selection.curation()
    for key, net in selection.get_all().items():
        queued = isinstance(key, int) and key < 0
        cell = f"queued {key}" if queued else str(key)
        rows.append(
            (
                cell,
                "-" if queued else _curation_mark(key, curation.pinned, curation.favored),
                str(net.complexity),
                "-" if net.n_params is None else f"{net.n_params:,}",
                _compact(net.flops),
                _number(net.val_acc),
                _number(net.test_acc),
                "-" if net.generation is None else str(net.generation),
                _short_id(net.id),
            )
        )
    return rows


def stats_line(stats: ArchiveStats) -> str:
    """Coverage, QD-score and fitness in one line."""
    return (
        f"coverage {stats.filled}/{stats.cells} ({stats.coverage:.0%}) · "
        f"QD-score {stats.qd_score:.3f} · best val_acc {_number(stats.best_fitness)} · "
        f"mean val_acc {_number(stats.mean_fitness)}"
    )


def _selection_lines(selection: Selection) -> list[str]:
    grid = selection.grid()
    axes = " × ".join(
        f"{name} ({levels})" for name, levels in zip(grid.measures, grid.levels, strict=True)
    )
    lines = [f"measures: {axes}", stats_line(selection.stats())]
    vetoed = selection.vetoed()
    if vetoed:
        shown = ", ".join(_short_id(entry.id) for entry in vetoed)
        lines.append(f"vetoed ({len(vetoed)}): {shown}")
    return lines


def selection_pretty(selection: Selection, p: Any, cycle: bool) -> None:
    """``Selection._repr_pretty_``."""

    def full() -> str:
        table = text_table(_CELL_HEADERS, _cell_rows(selection))
        return "\n".join([repr(selection), *_selection_lines(selection), table])

    _pretty(p, cycle, repr(selection), full)


def selection_html(selection: Selection) -> str:
    """``Selection._repr_html_``: the grid, metrics and a table of cells."""
    table = html_table(_CELL_HEADERS, _cell_rows(selection))
    return _html_block("Selection", _selection_lines(selection), table)


# -- Library --------------------------------------------------------------------

_LIBRARY_HEADERS = ("id", "layers", "parameters", "val_acc", "test_acc")


def _library_rows(library: Library) -> list[tuple[str, ...]]:
    return [
        (
            id,
            str(net.complexity),
            "-" if net.n_params is None else f"{net.n_params:,}",
            _number(net.val_acc),
            _number(net.test_acc),
        )
        for id, net in library.get_all().items()
    ]


def library_pretty(library: Library, p: Any, cycle: bool) -> None:
    """``Library._repr_pretty_``."""

    def full() -> str:
        return "\n".join([repr(library), text_table(_LIBRARY_HEADERS, _library_rows(library))])

    _pretty(p, cycle, repr(library), full)


def library_html(library: Library) -> str:
    """``Library._repr_html_``: a table of snapshots."""
    table = html_table(_LIBRARY_HEADERS, _library_rows(library))
    return _html_block(f"Library ({len(library)} networks)", [], table)


# -- Journal --------------------------------------------------------------------

#: "applies at": the boundary that first saw the action, e.g. ``12 selection``.
_JOURNAL_HEADERS = ("#", "time", "applies at", "action", "arguments")
#: Rows a journal view shows: a long session's table ends with its latest actions.
JOURNAL_ROWS = 40


def _journal_rows(view: JournalView) -> list[tuple[str, ...]]:
    return [
        (
            str(entry.seq),
            time.strftime("%H:%M:%S", time.localtime(entry.time)),
            str(entry.generation) if entry.stamp is None else str(entry.stamp),
            entry.action,
            describe_arguments(entry.arguments),
        )
        for entry in view.entries[-JOURNAL_ROWS:]
    ]


def _journal_lines(view: JournalView) -> list[str]:
    hidden = len(view) - JOURNAL_ROWS
    if hidden <= 0:
        return []
    return [f"the last {JOURNAL_ROWS}; {hidden} earlier in gn.journal.entries()"]


def journal_pretty(view: JournalView, p: Any, cycle: bool) -> None:
    """``JournalView._repr_pretty_``: one row per steering action (the latest ones)."""

    def full() -> str:
        table = text_table(_JOURNAL_HEADERS, _journal_rows(view))
        return "\n".join([repr(view), *_journal_lines(view), table])

    _pretty(p, cycle, repr(view), full)


def journal_html(view: JournalView) -> str:
    """``JournalView._repr_html_``: a table of steering actions (the latest ones)."""
    table = html_table(_JOURNAL_HEADERS, _journal_rows(view))
    return _html_block(f"Journal ({len(view)} actions)", _journal_lines(view), table)


# -- Run ------------------------------------------------------------------------


def progress_line(done: int, total: int | None) -> str:
    """``2/4 generations [██████████··········] 50%``; ``7 generations`` for a continual run."""
    if total is None:
        return f"{done} generations (continual)"
    fraction = min(1.0, done / total) if total else 1.0
    filled = round(fraction * BAR_WIDTH)
    return f"{done}/{total} generations [{'█' * filled}{'·' * (BAR_WIDTH - filled)}] {fraction:.0%}"


def _run_lines(run: Run) -> list[str]:
    status = run.status()
    minutes, seconds = divmod(int(status.elapsed), 60)
    lines = [
        f"{status.state} · {status.evaluated} evaluated · {status.failed} failed · "
        f"{minutes:02d}:{seconds:02d}",
        progress_line(status.completed, status.generations),
        stats_line(run.selection.stats()),
    ]
    if status.error is not None:
        lines.append(f"error: {type(status.error).__name__}: {status.error}")
    return lines


def run_pretty(run: Run, p: Any, cycle: bool) -> None:
    """``Run._repr_pretty_``: repr, state, a progress line and the latest metrics."""
    _pretty(p, cycle, repr(run), lambda: "\n".join([repr(run), *_run_lines(run)]))


def run_html(run: Run) -> str:
    """``Run._repr_html_``: state, a progress bar and the latest metrics."""
    status = run.status()
    bar = ""
    if status.generations is not None:
        bar = f'<progress value="{status.completed}" max="{status.generations}"></progress>'
    return _html_block("Run", _run_lines(run), bar)


def bind_views() -> None:
    """Lends the text and HTML renderers above to the classes they draw."""
    for cls, pretty, html_view in (
        (Network, network_pretty, network_html),
        (Selection, selection_pretty, selection_html),
        (Library, library_pretty, library_html),
        (JournalView, journal_pretty, journal_html),
        (Run, run_pretty, run_html),
    ):
        bind(cls, "pretty", pretty)
        bind(cls, "html", html_view)
