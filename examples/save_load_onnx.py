"""Keep what a run learned: save a network, load it back, move a Library, export to ONNX.

    python examples/save_load_onnx.py            # full MNIST
    python examples/save_load_onnx.py --quick    # a 600/200 sample of the bundled subset

Files are safetensors with JSON metadata: loading one never runs code. The ONNX
part needs the `onnx` extra (pip install 'galapagos-nao[onnx]').
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import galapagos_nao as gn


def main() -> None:
    """Parses the command line and runs the example."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, two generations")
    args = parser.parse_args()
    task = gn.example.example_task(quick=args.quick)
    folder = Path(tempfile.mkdtemp())

    run = gn.example.short_example(task)
    run.wait()
    net = max(gn.Selection.elites().values(), key=lambda n: n.val_acc)

    # The task holds images standardized for training; a network takes them as you
    # hold them (0..1 floats or uint8), so undo the standardization here.
    transform = net.input_transform
    images = task.x_test[:256] * transform.std + transform.mean

    # One file: genome, metrics, input transform and weights.
    path = net.save(folder / "best.safetensors")
    loaded = gn.load(path)
    assert loaded.id == net.id and loaded.test_acc == net.test_acc
    assert torch.equal(loaded.predict(images), net.predict(images))
    print(f"saved and loaded {loaded!r}")

    # The Library is durable already (in the workspace); export it as one file per
    # network, and import the folder into another Library, all or nothing.
    gn.Library.put(net)
    files = gn.Library.export(folder / "library")
    other = gn.library.Library()  # an in-memory Library of its own
    print(f"exported {len(files)} file(s), imported {len(other.import_(folder / 'library'))}")

    try:
        import onnxruntime
    except ImportError:
        print("skipping ONNX: pip install 'galapagos-nao[onnx]'")
        return
    # The graph takes `input` (batch, 1, 28, 28) float32 in 0..1 and returns `logits`.
    onnx_path = net.to_onnx(folder / "best.onnx")
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"input": images.numpy()})
    agree = (torch.from_numpy(logits).argmax(dim=1) == net.predict(images)).float().mean()
    print(f"ONNX {onnx_path.name}: onnxruntime agrees with torch on {agree:.1%} of 256 images")


if __name__ == "__main__":
    main()
