"""net.save / gn.load, Library export / import, ONNX export; damaged and hostile files."""

from __future__ import annotations

import pickletools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import galapagos_nao as gn
from galapagos_nao.core.network import Network
from galapagos_nao.store import persistence
from galapagos_nao.store.library import Library
from galapagos_nao.store.persistence import CorruptFileError

LAYERS = [("dense", [16, "relu"]), ("batch_norm", []), ("dropout", [0.25]), ("dense", [8, "tanh"])]


def pickle_bomb(sentinel: Path) -> bytes:
    """A protocol-0 pickle that creates ``sentinel`` when unpickled (calls ``open(path, 'w')``).

    Written by hand so that the test itself never imports pickle.
    """
    return f"c__builtin__\nopen\n(V{sentinel}\nVw\ntR.".encode()


@pytest.fixture(scope="module")
def trained(small_mnist, train_network) -> Network:
    return train_network(
        small_mnist,
        LAYERS,
        seed=1,
        parent_id="parent-0",
        generation=3,
        mutations=("remove 1 ('dropout', [0.5])",),
    )


def assert_same_network(a: Network, b: Network) -> None:
    assert (a.id, a.layers, a.input_shape, a.n_classes) == (
        b.id,
        b.layers,
        b.input_shape,
        b.n_classes,
    )
    assert (a.test_acc, a.val_acc, a.train_acc, a.loss, a.n_params) == (
        b.test_acc,
        b.val_acc,
        b.train_acc,
        b.loss,
        b.n_params,
    )
    assert (a.parent_id, a.generation, a.mutations) == (b.parent_id, b.generation, b.mutations)
    assert (a.weights is None) == (b.weights is None)
    if a.weights is not None and b.weights is not None:
        assert set(a.weights) == set(b.weights)
        for name in a.weights:
            assert torch.equal(a.weights[name], b.weights[name]), name


def test_save_then_load_gives_back_the_same_network(trained, small_mnist, tmp_path):
    path = trained.save(tmp_path / "net.safetensors")
    loaded = gn.load(path)
    assert_same_network(loaded, trained)
    x = small_mnist.x_test[:200]
    assert torch.equal(loaded.predict(x), trained.predict(x))
    assert [p.name for p in tmp_path.iterdir()] == ["net.safetensors"]  # nothing else left behind


def test_the_file_is_plain_safetensors_with_the_genome_in_its_metadata(trained, tmp_path):
    from safetensors import safe_open

    path = trained.save(tmp_path / "net.safetensors")
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
        names = set(file.keys())
    assert metadata["format"] == persistence.FORMAT
    assert '"dense", [16, "relu"]' in metadata["network"]
    assert names == set(trained.weights)


def test_untrained_network_round_trips_without_weights(tmp_path):
    net = Network([("dense", [4, "sigmoid"])], input_shape=(3,), n_classes=2)
    loaded = gn.load(net.save(tmp_path / "fresh.safetensors"))
    assert_same_network(loaded, net)


def test_saving_over_a_file_replaces_it_whole(trained, tmp_path):
    path = tmp_path / "net.safetensors"
    Network([("dense", [4, "relu"])]).save(path)
    trained.save(path)
    assert_same_network(gn.load(path), trained)
    assert [p.name for p in tmp_path.iterdir()] == ["net.safetensors"]


def test_altered_weight_bytes_are_detected(trained, tmp_path):
    path = trained.save(tmp_path / "net.safetensors")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # one bit in the last tensor's data, after the header
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="SHA-256") as caught:
        gn.load(path)
    assert str(path) in str(caught.value)


def test_a_truncated_file_is_reported_with_its_name(trained, tmp_path):
    path = trained.save(tmp_path / "net.safetensors")
    whole = path.read_bytes()
    for size in (4, 200, len(whole) - 100):
        path.write_bytes(whole[:size])
        with pytest.raises(CorruptFileError, match="net.safetensors"):
            gn.load(path)


def test_a_pickle_is_refused_without_being_run(tmp_path):
    sentinel = tmp_path / "pwned"
    bomb = pickle_bomb(sentinel)
    # it is a real pickle whose program calls open(sentinel, "w") ...
    opcodes = [op.name for op, _, _ in pickletools.genops(bomb)]
    assert opcodes[0] == "GLOBAL" and "REDUCE" in opcodes
    # ... under every name a network could be loaded from
    for name in ("bomb.safetensors", "bomb.pt"):
        (tmp_path / name).write_bytes(bomb)
        with pytest.raises(CorruptFileError, match="not a safetensors file"):
            gn.load(tmp_path / name)
    binary = b"\x80\x04" + bomb  # protocol 2+ pickles start with PROTO
    (tmp_path / "bomb2.safetensors").write_bytes(binary)
    with pytest.raises(CorruptFileError, match="pickle"):
        gn.load(tmp_path / "bomb2.safetensors")
    assert not sentinel.exists()


def test_a_header_length_that_looks_like_a_pickle_opcode_still_loads(tmp_path):
    # The 8-byte length prefix is little-endian: its first byte is 0x80 for some
    # lengths, which is also how binary pickles start.
    net = Network([("dense", [4, "relu"])], input_shape=(3,), n_classes=2)
    for pad in range(256):
        candidate = net.replace(mutations=("x" * pad,))
        if persistence.to_bytes(candidate)[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a length starting with 0x80")
    assert_same_network(gn.load(candidate.save(tmp_path / "net.safetensors")), candidate)


def test_a_torch_save_archive_is_refused(trained, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(dict(trained.weights), path)
    with pytest.raises(CorruptFileError, match="zip archive"):
        gn.load(path)


def test_weights_that_do_not_fit_the_genome_are_refused(crafter, tmp_path):
    model = gn.build([("dense", [4, "relu"])], (3,), 2)
    lying = Network(
        [("dense", [5, "relu"])], input_shape=(3,), n_classes=2, weights=model.state_dict()
    )
    with pytest.raises(ValueError, match=r"layer0\.0\.weight.*shape"):
        persistence.save(lying, tmp_path / "lying.safetensors")  # the writer refuses first
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(crafter(layers=[["dense", [3, "relu"]]]))  # weights of a 2-unit layer
    with pytest.raises(CorruptFileError, match=r"layer0\.0\.weight.*shape"):
        gn.load(path)


def test_foreign_safetensors_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(CorruptFileError, match="not a galapagos_nao network"):
        gn.load(path)


def test_bad_arguments_name_the_argument(trained, tmp_path):
    with pytest.raises(ValueError, match="path must be"):
        gn.load(42)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="no file"):
        gn.load(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        trained.save(tmp_path / "no" / "such" / "net.safetensors")
    with pytest.raises(ValueError, match="net must be a Network"):
        persistence.save("net", tmp_path / "x.safetensors")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_library_export_and_import_round_trip(trained, tmp_path):
    source = Library()
    other = Network([("dense", [4, "relu"])])
    source.put(trained)
    source.put(other)
    written = source.export(tmp_path / "export")
    assert sorted(p.name for p in written) == sorted(
        f"{i}.safetensors" for i in (trained.id, other.id)
    )
    target = Library()
    assert sorted(target.import_(tmp_path / "export")) == sorted([trained.id, other.id])
    assert_same_network(target.get(trained.id), trained)
    assert_same_network(target.get(other.id), other)


def test_import_is_all_or_nothing(trained, tmp_path):
    folder = tmp_path / "export"
    Library().export(folder)  # an empty Library exports nothing but makes the folder
    trained.save(folder / f"{trained.id}.safetensors")
    (folder / "broken.safetensors").write_bytes(pickle_bomb(tmp_path / "pwned"))
    target = Library()
    with pytest.raises(CorruptFileError, match="broken.safetensors"):
        target.import_(folder)
    assert len(target) == 0 and not (tmp_path / "pwned").exists()
    with pytest.raises(ValueError, match="holds no .safetensors"):
        target.import_(tmp_path)
    with pytest.raises(FileNotFoundError, match="no folder"):
        target.import_(tmp_path / "missing")


def test_onnx_export_predicts_like_torch(trained, small_mnist, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path = trained.to_onnx(tmp_path / "net.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = small_mnist.x_test[:333]  # another batch size than the export's example
    (logits,) = session.run(["logits"], {"input": x.numpy()})
    with torch.inference_mode():
        expected = trained.model()(x).numpy()
    assert logits.shape == (333, 10)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    assert np.array_equal(logits.argmax(1), trained.predict(x).numpy())
    assert [p.name for p in tmp_path.iterdir()] == ["net.onnx"]


def test_onnx_without_the_extra_names_it(trained, tmp_path, monkeypatch):
    # A missing package cannot be produced for real inside the test venv; None in
    # sys.modules makes the import fail exactly as an absent package does.
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ImportError, match=r"galapagos-nao\[onnx\]"):
        trained.to_onnx(tmp_path / "net.onnx")
    assert list(tmp_path.iterdir()) == []
