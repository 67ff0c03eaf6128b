"""The Selection's views show pins, favor and vetoes; the journal shows as a table."""

from __future__ import annotations

from IPython.lib.pretty import pretty

import galapagos_nao  # noqa: F401 - binds the views
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.network import Network
from galapagos_nao.store.journal import Journal
from galapagos_nao.ui.display import JOURNAL_ROWS


def net(n_layers: int, val_acc: float) -> Network:
    return Network([("dense", [8, "relu"])] * n_layers, val_acc=val_acc, test_acc=val_acc)


def test_the_selection_views_mark_pinned_favored_and_vetoed_cells():
    selection = Selection(parameters=Parameters())
    vetoed = net(1, 0.4)
    selection.select([net(2, 0.6), net(4, 0.7)])
    selection.pin(1)
    selection.favor(2, 3)
    selection.veto(vetoed)
    text, page = pretty(selection), selection._repr_html_()
    for view in (text, page):
        assert "pinned" in view and "favor 3" in view
        assert f"vetoed (1): {vetoed.id[:8]}" in view


def test_the_journal_shows_each_action_as_a_row():
    parameters = Parameters()
    journal = Journal()
    parameters.listeners.append(journal.listener("Parameters"))
    parameters.put("evolution", {"forbid": ["sigmoid"]})
    journal.record("breed", {"first": net(1, 0.5), "seed": 1})
    view = journal()
    text = pretty(view)
    assert text.splitlines()[0] == "<Journal: 2 actions>"
    assert "Parameters.put" in text and "values={forbid: ['sigmoid']}" in text
    assert "breed" in text and "seed=1" in text
    assert "<td>Parameters.put</td>" in view._repr_html_()


def test_a_long_journal_shows_its_latest_actions_and_says_how_many_are_earlier():
    parameters = Parameters()
    journal = Journal()
    parameters.listeners.append(journal.listener("Parameters"))
    for epochs in range(1, JOURNAL_ROWS + 6):
        parameters.put("training", {"epochs": epochs})
    view = journal()
    text, page = pretty(view), view._repr_html_()
    assert f"the last {JOURNAL_ROWS}; 5 earlier in gn.journal.entries()" in text
    assert f"epochs: {JOURNAL_ROWS + 5}" in text and "epochs: 5}" not in text
    assert "5 earlier" in page and len(view) == JOURNAL_ROWS + 5
