"""Hostile network files: ids that are paths, memory bombs, special files, crafted JSON.

Every file here carries a *valid* digest (see ``conftest.craft``), so what
refuses it is the check behind the digest, not the digest.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import time

import numpy as np
import pytest

import galapagos_nao as gn
from galapagos_nao.core.network import Network
from galapagos_nao.store import codec, persistence
from galapagos_nao.store.library import Library
from galapagos_nao.store.persistence import CorruptFileError
from galapagos_nao.store.workspace import Workspace

BAD_IDS = [
    "../../x",
    "/etc/passwd",
    "a/b",
    "..",
    ".",
    "",
    "x" * 65,
    "x" * 300,
    "a\x00b",
    "a.b",
    "ü",
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_an_id_that_could_be_a_path_is_refused_when_a_file_is_read(crafter, tmp_path, bad):
    path = tmp_path / "crafted.safetensors"
    for field in ("id", "parent_id"):
        path.write_bytes(crafter(**{field: bad}))
        with pytest.raises(CorruptFileError, match=rf"crafted\.safetensors.*{field}"):
            gn.load(path)


def test_export_of_an_imported_crafted_file_cannot_write_outside_its_folder(crafter, tmp_path):
    victim = tmp_path / "x.safetensors"
    victim.write_bytes(b"precious")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "a.safetensors").write_bytes(crafter(id="../../x"))
    library = Library()
    with pytest.raises(CorruptFileError, match=r"a\.safetensors.*id"):
        library.import_(incoming)
    library.export(tmp_path / "out" / "deep")
    assert victim.read_bytes() == b"precious" and len(library) == 0


def test_export_checks_every_id_before_writing_anything(tiny, tmp_path):
    library = Library()  # in memory: an id no file could be named by is refused on put
    library.put(tiny())
    with pytest.raises(ValueError, match="id must be .*" + "x" * 20):
        library.put(tiny(id="x" * 300))
    assert len(library) == 1
    with pytest.raises(ValueError, match="id must be .*" + "x" * 20):
        persistence.export_networks(
            [*library.get_all().values(), tiny(id="x" * 300)], tmp_path / "out"
        )
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=r"id must be .*'\.\./y'"):
        persistence.export_networks([tiny(id="../y")], tmp_path / "out")
    with pytest.raises(ValueError, match=r"parent_id must be .*'a/b'"):
        tiny(parent_id="a/b").save(tmp_path / "net.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# -- memory bombs --------------------------------------------------------------------


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_genome_far_larger_than_its_weights_is_refused_before_anything_is_built(
    crafter, tmp_path
):
    path = tmp_path / "bomb.safetensors"
    # A 1e12-unit layer: building it would ask for 16 TB; its stored weights are 4 floats.
    path.write_bytes(crafter(layers=[["dense", [10**12, "relu"]]]))
    with pytest.raises(CorruptFileError, match=r"bomb\.safetensors.*layer0\.0\.weight"):
        gn.load(path)


@pytest.mark.parametrize(
    "fields",
    [
        {"layers": [["dense", [30_000, "relu"]], ["dense", [30_000, "relu"]]]},  # 9e8 parameters
        {"input_shape": [100_000, 100_000]},
        {"n_classes": 10**9},
        {"layers": [["batch_norm", []]] * 100_000},  # too many layers to build at all
    ],
    ids=["parameters", "input", "classes", "layers"],
)
def test_an_untrained_genome_over_the_size_limit_is_refused_without_allocating(
    crafter, tmp_path, fields
):
    path = tmp_path / "bomb.safetensors"
    path.write_bytes(crafter(weights={}, **fields))
    before, started = peak_rss_mib(), time.monotonic()
    with pytest.raises(CorruptFileError, match=r"bomb\.safetensors.*(limit|at most)"):
        gn.load(path)
    assert time.monotonic() - started < 5 and peak_rss_mib() - before < 200
    assert path.stat().st_size < 4_000_000


def test_import_and_workspace_rows_refuse_a_bomb_the_same_way(crafter, tmp_path):
    bomb = crafter(layers=[["dense", [10**12, "relu"]]])
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bomb.safetensors").write_bytes(bomb)
    with pytest.raises(CorruptFileError, match="bomb.safetensors"):
        Library().import_(folder)
    good = Network([("dense", [3, "relu"])], input_shape=(4,), n_classes=2)
    with Workspace(tmp_path / "w.db") as store:
        Library(workspace=store).put(good)
    with sqlite3.connect(tmp_path / "w.db") as connection:
        connection.execute("INSERT INTO library (id, added, blob) VALUES ('b', 0, ?)", (bomb,))
    connection.close()
    with Workspace(tmp_path / "w.db") as store:
        library = Library(workspace=store)
        assert list(library.get_all()) == [good.id]
        with pytest.raises(CorruptFileError, match=r"library entry b\).*layer0"):
            library.get("b")


# -- special files ---------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_import_and_load_refuse_a_fifo_without_blocking(tiny, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    tiny().save(folder / "good.safetensors")
    os.mkfifo(folder / "a.safetensors")
    library = Library()
    with pytest.raises(CorruptFileError, match=r"a\.safetensors.*not a regular file"):
        library.import_(folder)
    assert len(library) == 0
    with pytest.raises(ValueError, match=r"a\.safetensors.*not a regular file"):
        gn.load(folder / "a.safetensors")


@pytest.mark.timeout(20)
def test_import_and_load_refuse_a_link_to_dev_zero_without_reading_it(tiny, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    tiny().save(folder / "good.safetensors")
    (folder / "z.safetensors").symlink_to("/dev/zero")
    with pytest.raises(CorruptFileError, match=r"z\.safetensors.*(symbolic link|not a regular)"):
        Library().import_(folder)
    with pytest.raises(ValueError, match=r"z\.safetensors.*not a regular file"):
        gn.load(folder / "z.safetensors")


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.safetensors"
    with path.open("wb") as file:
        file.truncate(codec.MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(CorruptFileError, match=r"huge\.safetensors.*bytes.*at most"):
        gn.load(path)


def test_a_symlink_named_by_the_user_is_followed_to_a_regular_file(tiny, tmp_path):
    net = tiny()
    net.save(tmp_path / "real.safetensors")
    (tmp_path / "latest.safetensors").symlink_to(tmp_path / "real.safetensors")
    assert gn.load(tmp_path / "latest.safetensors").id == net.id


# -- crafted structure ------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


def crafted_headers(crafter) -> dict[str, bytes]:
    file_bytes, seal = crafter.file_bytes, crafter.seal
    metadata = {"format": codec.FORMAT, "version": str(codec.FORMAT_VERSION), "sha256": "0" * 64}
    table = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}

    def tensors(entry: dict, data: bytes = b"\0" * 8) -> bytes:
        return seal(file_bytes({"__metadata__": {**metadata}, "head.bias": entry}, data))

    def record_text(text: str) -> bytes:  # an untrained network whose record is ``text``
        untrained = {**metadata, "network": text, "has_weights": "0"}
        return seal(file_bytes({"__metadata__": untrained}))

    record = json.dumps(crafter.record())
    untrained = json.dumps(
        {**metadata, "network": record, "has_weights": "0"}, separators=(",", ":")
    )
    duplicated = (untrained[:-1] + ',"has_weights":"0"}').encode()
    assert '"input_shape": [4]' in record

    return {
        "deep header": file_bytes(DEEP.encode()),
        "deep record": record_text(DEEP),
        "deep params": crafter(layers=[["dense", json.loads("[" * 900 + "]" * 900)]]),
        "huge int text": record_text(record.replace("[4]", "[" + "9" * 5000 + "]")),
        "huge float text": record_text(record.replace('"loss": null', '"loss": 1e999999')),
        "huge input": crafter(input_shape=[10**30]),
        "huge classes": crafter(n_classes=10**30),
        "negative offsets": tensors({**table, "data_offsets": [-8, 0]}),
        "offsets past the end": tensors({**table, "data_offsets": [0, 10**12]}),
        "shape overflow": tensors({**table, "shape": [2**62, 2**62]}),
        "negative shape": tensors({**table, "shape": [-2]}),
        "unknown dtype": tensors({**table, "dtype": "X99"}),
        "shape not ints": tensors({**table, "shape": ["2"]}),
        "table not an object": tensors([0, 8]),  # type: ignore[arg-type]
        "duplicate keys": seal(file_bytes(b'{"__metadata__":' + duplicated + b"}")),
        "nan metric": crafter(val_acc=float("nan")),
    }


def test_crafted_structures_raise_corrupt_file_error_only(crafter, tmp_path):
    for name, data in crafted_headers(crafter).items():
        path = tmp_path / "crafted.safetensors"
        path.write_bytes(data)
        with pytest.raises(CorruptFileError, match=r"crafted\.safetensors") as caught:
            gn.load(path)
        if name in ("nan metric", "huge float text"):
            assert "val_acc" in str(caught.value) or "loss" in str(caught.value), name


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("val_acc", float("nan")),
        ("val_acc", float("inf")),
        ("test_acc", 1.5),
        ("train_acc", -0.1),
        ("val_acc", "0.9"),
        ("val_acc", True),
        ("loss", float("nan")),
        ("loss", -1.0),
        ("n_params", 1.5),
        ("generation", -3),
        ("mutations", [1, 2]),
    ],
)
def test_a_metric_the_archive_could_not_rank_is_refused_naming_it(crafter, tmp_path, field, value):
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(crafter(**{field: value}))
    with pytest.raises(CorruptFileError, match=rf"crafted\.safetensors: {field}"):
        gn.load(path)


def test_random_record_values_load_or_raise_corrupt_file_error(crafter, tmp_path):
    rng = np.random.default_rng(11)
    net = crafter.record()
    hostile = [
        None,
        -1,
        0,
        1,
        2**63,
        10**30,
        -(10**30),
        1e308,
        "x",
        "../x",
        [],
        {},
        [[]],
        [1, 2],
        ["dense"],
        [["dense", [2, "relu"]]],
        True,
        "x" * 300,
        [10**12],
        [0],
    ]
    tried = 0
    for _ in range(1500):
        record = dict(net)
        for field in rng.choice(sorted(record), size=int(rng.integers(1, 4)), replace=False):
            record[field] = hostile[int(rng.integers(len(hostile)))]
        data = crafter(record=record, weights={} if rng.random() < 0.3 else None)
        try:
            codec.from_bytes(data, "fuzzed.safetensors")
        except CorruptFileError as error:
            assert "fuzzed.safetensors" in str(error)
        tried += 1
    assert tried == 1500


def test_a_workspace_row_filed_under_another_id_is_reported_and_the_rest_loads(tiny, tmp_path):
    good, moved = tiny(), tiny()
    with Workspace(tmp_path / "w.db") as store:
        Library(workspace=store).put(good)
    with sqlite3.connect(tmp_path / "w.db") as connection:
        for key in ("../../x", "other-id"):
            connection.execute(
                "INSERT INTO library (id, added, blob) VALUES (?, 0, ?)",
                (key, codec.to_bytes(moved)),
            )
    connection.close()
    with Workspace(tmp_path / "w.db") as store:
        found, problems = store.load_library()
    assert list(found) == [good.id] and sorted(problems) == ["../../x", "other-id"]
    assert f"holds network {moved.id}" in problems["other-id"]
