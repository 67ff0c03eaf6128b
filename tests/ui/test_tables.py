"""What a new user meets in IPython: gn.<Tab>, gn?, the settings table, the experiments list."""

from __future__ import annotations

import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell
from IPython.lib.pretty import pretty

import galapagos_nao as gn


@pytest.fixture
def shell():
    ipython = InteractiveShell.instance()
    ipython.run_cell("import galapagos_nao as gn")
    yield ipython
    gn.Parameters.reset()


def completions(shell, text: str) -> set[str]:
    with provisionalcompleter():
        return {c.text for c in shell.Completer.completions(text, len(text))}


def test_tab_offers_the_users_api_only(shell):
    offered = completions(shell, "gn.")
    assert {"Selection", "Parameters", "Library", "evolve", "experiment", "journal"} <= offered
    assert not offered & {"sys", "annotations", "selection", "loop", "checkpoint", "core", "api"}
    selection = completions(shell, "gn.Selection.")
    assert {"get_all", "pin", "favor", "veto", "clear", "put_unevaluated"} <= selection
    assert not selection & {"claim", "record_generation", "restore", "select", "listeners"}
    assert "listeners" not in completions(shell, "gn.Parameters.")
    assert "get_all" in completions(shell, "gn.Parameters.")
    assert "listeners" not in completions(shell, "gn.Library.")
    assert gn.Selection.claim and gn.selection  # hidden, not gone


def test_gn_question_mark_begins_with_how_to_start(shell):
    docstring = shell.object_inspect("gn")["docstring"]
    lines = [line for line in docstring.splitlines() if line.strip()]
    assert lines[1] == "How to start::"
    assert "gn.example.short_example()" in lines[3]


def test_parameters_get_all_is_every_setting_with_its_default_and_meaning(shell):
    gn.Parameters.put(gn.training, {"epochs": 2})
    table = shell.run_cell("gn.Parameters.get_all()").result
    assert table["training"]["epochs"] == 2 and table[gn.training]["epochs"] == 2
    rows = {f"{row.section}.{row.key}": row for row in table.rows()}
    assert rows["training.epochs"].changed and not rows["training.batch_size"].changed
    assert rows["training.epochs"].default == 1 and rows["training.epochs"].doc
    text = pretty(table)
    assert (
        text.splitlines()[0]
        == repr(table)
        == (f"<Parameters: {len(rows)} settings, 1 changed from the defaults>")
    )
    epochs = next(line for line in text.splitlines() if line.startswith("training.epochs"))
    assert "2 *" in epochs and "epochs per candidate" in epochs
    layer_types = next(line for line in text.splitlines() if "layer_types" in line)
    assert "…" in layer_types  # a long value is cut, not drawn across the screen
    html = table._repr_html_()
    assert "<table>" in html and "training.epochs" in html and "2 *" in html
    table["training"]["epochs"] = 5  # a snapshot: the settings do not change
    assert gn.Parameters.get(gn.training, "epochs") == 2
