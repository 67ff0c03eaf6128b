"""The run's entry points name a bad argument with a ValueError and queue nothing."""

from __future__ import annotations

import pytest

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters


def test_evolve_refuses_a_selection_that_is_not_one():
    with pytest.raises(ValueError, match=r"selection must be a Selection"):
        gn.evolve([("dense", [4, "relu"])], 1, selection={})


def test_evolve_refuses_a_list_holding_an_empty_list():
    selection = Selection(parameters=Parameters())
    with pytest.raises(ValueError, match=r"net_or_nets\[0\]"):
        gn.evolve([[]], 1, selection=selection)
    assert len(selection) == 0
