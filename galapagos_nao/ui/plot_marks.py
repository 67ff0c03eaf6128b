"""The marks the plots put on an archive and a history: pins and favor, run starts, task switches.

Helpers of :mod:`galapagos_nao.ui.plot`, kept apart so that each plot reads as
what it draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from galapagos_nao.archive.curation import CurationState
from galapagos_nao.archive.history import HistoryEntry

__all__ = ["curation_marks", "draw_curation_marks", "run_starts", "task_switches"]


def run_starts(entries: Sequence[HistoryEntry]) -> list[int]:
    """Indices of the entries that begin a new run (after the first entry).

    Entries say so themselves; older ones (without it) where the generation count
    started over.
    """
    starts = []
    for index in range(1, len(entries)):
        previous, current = entries[index - 1].stats.generation, entries[index].stats.generation
        restarted = previous is not None and current is not None and current <= previous
        if entries[index].first_of_run or restarted:
            starts.append(index)
    return starts


def task_switches(entries: Sequence[HistoryEntry]) -> list[int]:
    """Indices of the entries whose task differs from the entry before (a task stream moved)."""
    return [
        index
        for index in range(1, len(entries))
        if entries[index].task is not None
        and entries[index - 1].task is not None
        and entries[index].task != entries[index - 1].task
    ]


def curation_marks(curation: CurationState) -> dict[tuple[int, ...], str]:
    """Zero-based grid position → ``P`` (pinned), ``×w`` (favor) or both, per marked cell."""
    marks: dict[tuple[int, ...], str] = {}
    for cell in {*curation.pinned, *curation.favored}:
        levels = cell if isinstance(cell, tuple) else (cell,)
        weight = curation.favored.get(cell)
        text = ("P" if cell in curation.pinned else "") + ("" if weight is None else f"×{weight:g}")
        marks[tuple(level - 1 for level in levels)] = text
    return marks


def draw_curation_marks(ax: Any, curation: CurationState, levels: Sequence[int]) -> None:
    """Writes each marked cell's ``P``/``×w`` on an archive plot, for cells the grid has.

    Bars get it at their foot, a grid in the cell's corner.
    """
    for position, text in curation_marks(curation).items():
        if len(position) != len(levels) or not all(
            0 <= p < n for p, n in zip(position, levels, strict=True)
        ):
            continue  # a mark waiting for the next selection to re-bin it
        if len(position) == 1:
            ax.annotate(
                text,
                (position[0], 0.0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                color="tab:red",
                fontweight="bold",
            )
        else:
            row, column = position
            ax.text(
                column + 0.45,
                row + 0.45,
                text,
                ha="right",
                va="top",
                color="tab:red",
                fontsize="small",
                fontweight="bold",
            )
