"""One gate for every record: whatever a reader refuses, every writer refuses when it is written.

Finding 3 of issue 22: ``Library.put`` and checkpoints accepted records that the
next session refused. The cases here are not a list of known bugs: every field
the codec stores is given every hostile value in :data:`HOSTILE`, written as a
file by hand (the reader's verdict) and held in memory (the writers' verdict),
so a check added to the reader alone fails this test.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.core import datasets
from galapagos_nao.core.network import Network, build
from galapagos_nao.run.local import LocalEvaluator
from galapagos_nao.store import codec, persistence
from galapagos_nao.store.library import Library
from galapagos_nao.store.persistence import CorruptFileError
from galapagos_nao.store.workspace import Workspace

#: Values a tampered or careless record may hold in any field.
HOSTILE: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    7.0,
    -0.5,
    -1,
    "0.9",
    "x",
    True,
    None,
    [],
    [1, "a"],
    {},
    10**12,
    2**63,
    "",
    "../escape",
]

#: Whole records the reader refuses for their size or weights, not one field's value.
TINY_WEIGHTS = build([("dense", [2, "relu"])], (4,), 2).state_dict()  # the tiny network's
STRUCTURAL: dict[str, tuple[dict[str, Any], dict[str, torch.Tensor] | None]] = {
    "5,000 layers": ({"layers": [["dense", [2, "relu"]]] * 5000}, None),
    "dense 2**28": ({"layers": [["dense", [2**28, "relu"]]]}, None),
    "input_shape (2**28,)": ({"input_shape": [2**28]}, None),
    "n_params 10**12": ({"n_params": 10**12}, None),
    "n_params off by one": ({"n_params": 15}, None),
    "a weight of the wrong shape": (
        {},
        {**TINY_WEIGHTS, "head.weight": torch.zeros(2, 3)},
    ),
    "an extra tensor": ({}, {**TINY_WEIGHTS, "layer9.bias": torch.zeros(2)}),
    "a missing tensor": (
        {},
        {k: v for k, v in TINY_WEIGHTS.items() if k != "head.bias"},
    ),
}


def cases() -> list[tuple[str, dict[str, Any], dict[str, torch.Tensor] | None]]:
    """Every stored field with every hostile value, then the structural cases."""
    found = [
        (f"{name}={value!r}", {name: value}, None)
        for name in codec._RECORD_FIELDS  # every field the codec writes
        for value in HOSTILE
    ]
    return found + [(label, fields, weights) for label, (fields, weights) in STRUCTURAL.items()]


def reader_verdict(craft: Any, net: Network) -> str | None:
    """Why the reader refuses a file holding exactly ``net`` (None if it reads it back).

    The file is written by hand (the crafter), not by the codec's writer, whose
    gate is what is under test.
    """
    record = json.loads(json.dumps(codec._record(net), default=list))
    data = craft(record=record, weights={} if net.weights is None else dict(net.weights))
    try:
        codec.from_bytes(data, "<file>")
    except CorruptFileError as error:
        return str(error).removeprefix("<file>: ")
    return None


def in_memory(
    tiny: Any, fields: dict[str, Any], weights: dict[str, torch.Tensor] | None
) -> Network:
    """The same record as a caller would hold it (raises where Network itself refuses)."""
    base = tiny(val_acc=0.5)
    changes: dict[str, Any] = {"weights": weights, **fields}
    if "layers" in fields or "input_shape" in fields:
        return Network(**{**_record_of(base), **changes})
    return dataclasses.replace(base, **changes)


def _record_of(net: Network) -> dict[str, Any]:
    return {f.name: getattr(net, f.name) for f in dataclasses.fields(net)}


def writers(tmp_path: Path) -> dict[str, Callable[[Network], Any]]:
    """Each way a record is written or kept, with a fresh target."""
    workspace = Workspace(tmp_path / "w.db")
    return {
        "Library.put": Library().put,
        "Library.put (workspace)": Library(workspace=workspace).put,
        "save": lambda net: persistence.save(net, tmp_path / "net.safetensors"),
        "to_bytes (checkpoints, exports)": persistence.to_bytes,
        "Selection.put": lambda net: Selection().put(1, net),
        "Selection.put_unevaluated": Selection().put_unevaluated,
        "Selection.restore (elites)": lambda net: Selection().restore({1: net}),
        "Selection.restore (queue)": lambda net: Selection().restore({}, {-1: net}),
    }


def test_every_record_a_reader_refuses_is_refused_by_every_writer(crafter, tiny, tmp_path):
    refused_by_reader = 0
    accepted_but_unreadable: list[str] = []
    misnamed: list[str] = []
    for label, fields, weights in cases():
        try:
            net = in_memory(tiny, fields, weights)
        except (ValueError, TypeError):
            continue  # no such record can even be made
        verdict = reader_verdict(crafter, net)
        if verdict is None:
            continue
        refused_by_reader += 1
        folder = tmp_path / str(refused_by_reader)
        folder.mkdir()
        for writer, write in writers(folder).items():
            try:
                write(net)
            except ValueError as error:
                # The same check, in the writer's words: the reader's message, named field and all.
                if verdict not in str(error):
                    misnamed.append(f"{writer} on {label}: {error} (reader: {verdict})")
            else:
                accepted_but_unreadable.append(f"{writer} accepted {label}: reader says {verdict}")
        assert not [p.name for p in folder.iterdir() if not p.name.startswith("w.db")], label
        assert Workspace(folder / "w.db", read_only=True).load_library() == ({}, {}), label
    assert accepted_but_unreadable == []
    assert misnamed == []
    assert refused_by_reader >= 100  # the pool reaches the reader's checks


def test_what_a_writer_accepts_reads_back_equal(crafter, tiny):
    for label, fields, weights in cases():
        try:
            net = in_memory(tiny, fields, weights)
        except (ValueError, TypeError):
            continue
        if reader_verdict(crafter, net) is not None:
            continue
        back = codec.from_bytes(persistence.to_bytes(net), label)
        assert (back.id, back.layers, back.val_acc, back.n_params) == (
            net.id,
            net.layers,
            net.val_acc,
            net.n_params,
        ), label


@pytest.mark.parametrize("val_acc", [7.0, "x", math.nan, "0.9"])
def test_a_queued_network_with_an_impossible_fitness_never_enters_the_archive(tiny, val_acc):
    selection = Selection()
    selection.put_unevaluated(tiny())
    before = selection.get_all()
    bad = tiny(val_acc=val_acc)
    with pytest.raises(ValueError, match=r"val_acc must be a number in \[0, 1\]"):
        selection.put_unevaluated(bad)
    with pytest.raises(ValueError, match="val_acc"):
        selection.put(1, bad)
    with pytest.raises(ValueError, match=r"queue\[-2\].*val_acc"):
        selection.restore({}, {-2: bad})
    assert selection.get_all() == before


def test_a_parameter_count_is_recomputed_not_trusted(crafter, tiny, tmp_path):
    path = tmp_path / "big.safetensors"
    path.write_bytes(crafter(n_params=10**12, val_acc=0.99))
    with pytest.raises(CorruptFileError, match=r"big\.safetensors: n_params is 1000000000000"):
        persistence.load(path)
    library = Library()
    with pytest.raises(CorruptFileError, match="n_params"):
        library.import_(tmp_path)
    assert len(library) == 0
    honest = tiny(n_params=None).model()
    counted = sum(p.numel() for p in honest.parameters())
    with pytest.raises(ValueError, match=f"but the genome has {counted} trainable"):
        Selection().put(1, tiny(n_params=10**12, val_acc=0.99))
    assert codec.from_bytes(persistence.to_bytes(tiny(n_params=counted))).n_params == counted


class LyingEvaluator:
    """A real local evaluator whose results then claim impossible metrics (a buggy evaluator).

    The first candidate of each generation claims ``val_acc`` 7.0, the second
    ``"x"``, the third ``n_params`` 10**12.
    """

    def __init__(self) -> None:
        self.inner = LocalEvaluator()
        self.lies = 0

    def evaluate(self, candidates, job):
        for outcome in self.inner.evaluate(candidates, job):
            net, index = outcome.network, outcome.candidate.index
            if net is not None and index < 3:
                lie = [{"val_acc": 7.0}, {"val_acc": "x"}, {"n_params": 10**12}][index]
                outcome = dataclasses.replace(outcome, network=dataclasses.replace(net, **lie))
                self.lies += 1
            yield outcome

    def close(self) -> None:
        self.inner.close()


def test_a_run_whose_evaluator_lies_keeps_running_and_no_lie_takes_a_cell(small_mnist, caplog):
    task = datasets.subset(small_mnist, 300, 100, seed=0)
    selection = Selection()
    selection.parameters.put("training", {"epochs": 1})
    evaluator = LyingEvaluator()
    with caplog.at_level("WARNING", logger="galapagos_nao.archive.selection"):
        run = gn.evolve(
            [("dense", [8, "relu"])], 2, task, selection=selection, seed=1, evaluator=evaluator
        )
        elites = run.result(300).values()  # re-raises what would have killed the run
    assert evaluator.lies >= 3
    assert elites and all(0 <= net.val_acc <= 1 and net.n_params < 10**6 for net in elites)
    assert "is not kept: val_acc must be a number in [0, 1], got 7.0" in caplog.text
