"""One digest covers the whole record: a flipped bit anywhere in a file or a row is caught."""

from __future__ import annotations

import sqlite3
import time
import uuid

import numpy as np
import pytest

import galapagos_nao as gn
from galapagos_nao.store import codec
from galapagos_nao.store.persistence import CorruptFileError
from galapagos_nao.store.workspace import Workspace


def test_every_single_bit_flip_of_a_saved_file_is_detected(tiny, tmp_path):
    net = tiny(
        val_acc=0.5,
        test_acc=0.25,
        parent_id=str(uuid.uuid4()),
        generation=3,
        mutations=("remove 0",),
    )
    path = net.save(tmp_path / "tiny.safetensors")
    saved = path.read_bytes()
    started = time.monotonic()
    flipped = bytearray(saved)
    tried = detected = 0
    for index in range(len(saved)):
        for bit in range(8):
            flipped[index] ^= 1 << bit
            path.write_bytes(flipped)
            tried += 1
            try:
                gn.load(path)
            except CorruptFileError as error:
                detected += "tiny.safetensors" in str(error)
            except ValueError as error:  # only the length prefix may fail otherwise
                detected += index < 8 and "tiny.safetensors" in str(error)
            flipped[index] ^= 1 << bit
    assert (detected, tried) == (8 * len(saved), 8 * len(saved))
    assert time.monotonic() - started < 60
    path.write_bytes(saved)
    assert gn.load(path).id == net.id


def test_a_version_1_file_is_read_only_through_the_upgrade_that_says_what_it_cannot_verify(
    crafter, tmp_path, caplog
):
    path = tmp_path / "old.safetensors"
    old = crafter(version=1)
    path.write_bytes(old)
    with pytest.raises(codec.OldFormatError, match=r"old\.safetensors.*version 1.*gn\.upgrade"):
        gn.load(path)
    # A flipped metadata bit is what version 1 cannot see; plain reading never gets that far.
    altered = old.replace(b'\\"generation\\": null', b'\\"generation\\": 9   ', 1)  # same length
    assert altered != old
    path.write_bytes(altered)
    with pytest.raises(codec.OldFormatError):
        gn.load(path)
    with caplog.at_level("WARNING", logger="galapagos_nao.store.old_files"):
        upgraded = gn.upgrade(path, tmp_path / "new.safetensors")
    assert upgraded.weights is not None and upgraded.generation == 9
    assert "old.safetensors" in caplog.text and "cannot be detected" in caplog.text
    assert gn.load(tmp_path / "new.safetensors").id == upgraded.id  # version 2 now: sealed
    assert path.read_bytes() == altered  # a target was given: the old file is left as it was
    damaged = bytearray(old)
    damaged[-3] ^= 0x04  # a weight byte: the version 1 digest covers it
    path.write_bytes(damaged)
    with pytest.raises(CorruptFileError, match=r"old\.safetensors.*SHA-256"):
        gn.upgrade(path)
    assert path.read_bytes() == bytes(damaged)


def test_a_file_claiming_the_new_version_must_pass_the_full_digest(crafter, tmp_path):
    # A version 1 file relabelled as version 2 (its old, weights-only digest kept).
    relabelled = crafter(version=1).replace(b'"version":"1"', b'"version":"2"')
    path = tmp_path / "relabelled.safetensors"
    path.write_bytes(relabelled)
    with pytest.raises(CorruptFileError, match=r"relabelled\.safetensors.*digest"):
        gn.load(path)
    sealed = bytearray(crafter())
    sealed[sealed.index(b"loss") + 1] ^= 0x01  # metadata only; the weights are intact
    path.write_bytes(sealed)
    with pytest.raises(CorruptFileError, match=r"relabelled\.safetensors.*digest"):
        gn.load(path)


def test_random_bit_flips_in_a_workspace_row_are_each_named(tiny, tmp_path):
    net = tiny(val_acc=0.5)
    with Workspace(tmp_path / "w.db") as store:
        store.put_library({net.id: codec.to_bytes(net)})
    blob = codec.to_bytes(net)
    rng = np.random.default_rng(6)
    view = Workspace(tmp_path / "w.db", read_only=True)
    editor = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    try:
        for _ in range(250):
            flipped = bytearray(blob)
            flipped[int(rng.integers(len(blob)))] ^= 1 << int(rng.integers(8))
            editor.execute("UPDATE library SET blob = ? WHERE id = ?", (bytes(flipped), net.id))
            found, problems = view.load_library()
            assert found == {} and list(problems) == [net.id]
            assert f"library entry {net.id}" in problems[net.id]
    finally:
        editor.close()
        view.close()


def test_no_single_bit_flip_of_a_version_1_header_loads(crafter, tmp_path):
    """Version 1 sealed only the weights; once 656 of 7,424 header flips loaded altered."""
    old = crafter(version=1)
    header_end = 8 + int.from_bytes(old[:8], "little")
    flipped = bytearray(old)
    loaded = []
    for index in range(8, header_end):
        for bit in range(8):
            flipped[index] ^= 1 << bit
            try:
                codec.from_bytes(bytes(flipped), "old.safetensors")
                loaded.append((index, bit))
            except CorruptFileError:
                pass  # OldFormatError among them: only gn.upgrade reads version 1
            flipped[index] ^= 1 << bit
    assert loaded == []
    assert (header_end - 8) * 8 > 5000  # every header bit was tried
