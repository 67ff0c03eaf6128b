from __future__ import annotations

import pytest

from galapagos_nao.core.network import Network
from galapagos_nao.store.library import Library


def test_put_get_round_trip_keeps_the_same_record():
    library = Library()
    net = Network([("dense", [4, "relu"])], test_acc=0.9)
    assert library.put(net) == net.id
    assert library.get(net.id) is net
    assert library.get_all() == {net.id: net}
    assert net.id in library and len(library) == 1


def test_unknown_id_raises_key_error_naming_it():
    library = Library()
    with pytest.raises(KeyError, match="nope"):
        library.get("nope")
    with pytest.raises(KeyError, match="nope"):
        library.remove("nope")


def test_remove_returns_and_forgets():
    library = Library()
    net = Network([])
    library.put(net)
    assert library.remove(net.id) is net
    assert library.get_all() == {}


def test_put_rejects_non_networks_and_changes_nothing():
    library = Library()
    with pytest.raises(ValueError, match="net must be a Network"):
        library.put({"id": "x"})  # type: ignore[arg-type]
    assert len(library) == 0


def test_get_all_is_a_snapshot():
    library = Library()
    library.put(Network([]))
    library.get_all().clear()
    assert len(library) == 1
