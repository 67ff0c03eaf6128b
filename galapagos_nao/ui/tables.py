"""Tables of the settings (``gn.Parameters.get_all()``) and the experiments (``gn.experiments()``).

The text and HTML views :func:`bind_tables` lends those two classes.
"""

from __future__ import annotations

import html
import time
from typing import Any

from galapagos_nao.config.parameters import ParameterTable
from galapagos_nao.core.bindings import bind
from galapagos_nao.run.experiments import ExperimentList
from galapagos_nao.ui.display import html_table, text_table

__all__ = ["bind_tables", "experiments_html", "parameters_html"]

_PARAMETER_HEADERS = ("setting", "value", "default", "what it is")
_EXPERIMENT_HEADERS = (
    "",
    "experiment",
    "cells",
    "best val_acc",
    "runs",
    "generation",
    "last",
    "task",
)


#: Widest value a table cell shows (a layer_types dict is long): the rest is "…".
_VALUE_WIDTH = 36


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 1] + "…"


def _parameter_rows(table: ParameterTable) -> list[tuple[str, ...]]:
    return [
        (
            f"{row.section}.{row.key}",
            _short(row.value) + (" *" if row.changed else ""),
            _short(row.default),
            row.doc,
        )
        for row in table.rows()
    ]


def parameters_pretty(table: ParameterTable, p: Any, cycle: bool) -> None:
    """``ParameterTable._repr_pretty_``: every setting; ``*`` marks one changed from its default."""
    if cycle or len(getattr(p, "stack", ())) > 1:
        p.text(repr(table))
        return
    p.text("\n".join([repr(table), text_table(_PARAMETER_HEADERS, _parameter_rows(table))]))


def parameters_html(table: ParameterTable) -> str:
    """``ParameterTable._repr_html_``: the same table, in HTML."""
    rows = html_table(_PARAMETER_HEADERS, _parameter_rows(table))
    return f"<div><strong>{html.escape(repr(table)[1:-1])}</strong>{rows}</div>"


def _experiment_rows(listed: ExperimentList) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for info in listed:
        last = (
            "-"
            if info.last_activity is None
            else time.strftime("%Y-%m-%d %H:%M", time.localtime(info.last_activity))
        )
        rows.append(
            (
                "*" if info.name == listed.current else "",
                info.name,
                str(info.cells),
                "-" if info.best_val_acc is None else f"{info.best_val_acc:.4f}",
                str(info.runs),
                "-" if info.generation is None else str(info.generation),
                last,
                "-" if info.task is None else str(info.task.get("name", "?")),
            )
        )
    return rows


def experiments_pretty(listed: ExperimentList, p: Any, cycle: bool) -> None:
    """``ExperimentList._repr_pretty_``: one row per experiment; ``*`` marks the current one."""
    if cycle or len(getattr(p, "stack", ())) > 1:
        p.text(repr(listed))
        return
    p.text("\n".join([repr(listed), text_table(_EXPERIMENT_HEADERS, _experiment_rows(listed))]))


def experiments_html(listed: ExperimentList) -> str:
    """``ExperimentList._repr_html_``: the same table, in HTML."""
    table = html_table(_EXPERIMENT_HEADERS, _experiment_rows(listed))
    return f"<div><strong>Experiments</strong>{table}</div>"


def bind_tables() -> None:
    """Lends the views above to the settings table and the experiments list."""
    bind(ParameterTable, "pretty", parameters_pretty)
    bind(ParameterTable, "html", parameters_html)
    bind(ExperimentList, "pretty", experiments_pretty)
    bind(ExperimentList, "html", experiments_html)
