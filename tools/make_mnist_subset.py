"""Build the bundled, class-balanced MNIST subset shipped in ``galapagos_nao/data``.

The subset lets the library and its tests run offline. It is drawn from the raw
IDX files with numpy only (no torchvision) so it can be rebuilt anywhere::

    python tools/make_mnist_subset.py --n-train 15000 --n-test 3000 --seed 0

The output is ``mnist_subset.npz`` (compressed, no pickled objects) plus
``MNIST_SUBSET_LICENSE.md`` recording the attribution, the seed and the exact
indices that were sampled.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

# IDX magic numbers: 0x00000801 = uint8 vector (labels), 0x00000803 = uint8 3-D (images).
_LABELS_MAGIC = 2049
_IMAGES_MAGIC = 2051
_N_CLASSES = 10

_REPO_ROOT = Path(__file__).resolve().parent.parent
_DEFAULT_RAW = _REPO_ROOT.parent / "shared" / "data" / "MNIST" / "raw"
_DEFAULT_OUT = _REPO_ROOT / "galapagos_nao" / "data"


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read an uncompressed IDX file into a uint8 array.

    Args:
        path: The IDX file.
        expected_magic: The magic number the file must start with.

    Returns:
        The array, shaped by the dimensions stored in the header.

    Raises:
        ValueError: If the magic number or the payload size is wrong.
    """
    raw = path.read_bytes()
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise ValueError(f"{path}: magic number {magic}, expected {expected_magic}")
    n_dims = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims)]
    payload = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * n_dims)
    if payload.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {payload.size} bytes of data, header says {dims}")
    return payload.reshape(dims)


def balanced_indices(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Pick ``n // 10`` random indices per class (the remainder to the first classes).

    Args:
        labels: The labels of the whole split, shape ``(n_total,)``.
        n: How many indices to pick in total.
        rng: The generator every random choice is drawn from.

    Returns:
        Sorted indices into the split, so the subset keeps MNIST's own order.
    """
    per_class = [n // _N_CLASSES + (1 if c < n % _N_CLASSES else 0) for c in range(_N_CLASSES)]
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
        for c, k in enumerate(per_class)
    ]
    return np.sort(np.concatenate(picked))


def _indices_text(indices: np.ndarray) -> str:
    """Format indices as wrapped comma-separated lines for the license file."""
    items = [str(int(i)) for i in indices]
    lines = [", ".join(items[start : start + 16]) for start in range(0, len(items), 16)]
    return "\n".join(lines)


def _license_text(
    args: argparse.Namespace, train_idx: np.ndarray, test_idx: np.ndarray, npz_path: Path
) -> str:
    digest = hashlib.sha256(npz_path.read_bytes()).hexdigest()
    return f"""# Bundled MNIST subset: attribution and provenance

`mnist_subset.npz` is a subset of the MNIST database of handwritten digits by
**Yann LeCun, Corinna Cortes and Christopher J.C. Burges**
(<http://yann.lecun.com/exdb/mnist/>), which is made available under the
**Creative Commons Attribution-Share Alike 3.0** license (CC BY-SA 3.0,
<https://creativecommons.org/licenses/by-sa/3.0/>). This subset is distributed
under the same license. The pixels and labels are unchanged; only a selection of
the samples is kept.

## Contents

| array | dtype | shape |
|---|---|---|
| `x_train` | uint8 | ({len(train_idx)}, 28, 28) |
| `y_train` | uint8 | ({len(train_idx)},) |
| `x_test` | uint8 | ({len(test_idx)}, 28, 28) |
| `y_test` | uint8 | ({len(test_idx)},) |

Load it with `numpy.load(path, allow_pickle=False)`.
SHA-256 of `mnist_subset.npz`: `{digest}`.

## How it was made

`tools/make_mnist_subset.py --n-train {args.n_train} --n-test {args.n_test} --seed {args.seed}`
read the original uncompressed IDX files (`train-images-idx3-ubyte`,
`train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`)
and, with `numpy.random.default_rng({args.seed})`, drew for each digit 0-9 in turn
an equal number of samples without replacement, first from the 60,000 training
images, then from the 10,000 test images. Indices are kept in their original
order; training samples come only from the MNIST training set and test samples
only from the MNIST test set.

## Sampled indices into the MNIST training set ({len(train_idx)})

```
{_indices_text(train_idx)}
```

## Sampled indices into the MNIST test set ({len(test_idx)})

```
{_indices_text(test_idx)}
```
"""


def main() -> None:
    """Parse arguments, draw the subset and write the archive and its license file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=_DEFAULT_RAW, help="MNIST/raw directory")
    parser.add_argument("--out", type=Path, default=_DEFAULT_OUT, help="output directory")
    parser.add_argument("--n-train", type=int, default=15000)
    parser.add_argument("--n-test", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x_train = read_idx(args.raw / "train-images-idx3-ubyte", _IMAGES_MAGIC)
    y_train = read_idx(args.raw / "train-labels-idx1-ubyte", _LABELS_MAGIC)
    x_test = read_idx(args.raw / "t10k-images-idx3-ubyte", _IMAGES_MAGIC)
    y_test = read_idx(args.raw / "t10k-labels-idx1-ubyte", _LABELS_MAGIC)

    rng = np.random.default_rng(args.seed)
    train_idx = balanced_indices(y_train, args.n_train, rng)
    test_idx = balanced_indices(y_test, args.n_test, rng)

    args.out.mkdir(parents=True, exist_ok=True)
    npz_path = args.out / "mnist_subset.npz"
    np.savez_compressed(
        npz_path,
        x_train=x_train[train_idx],
        y_train=y_train[train_idx],
        x_test=x_test[test_idx],
        y_test=y_test[test_idx],
    )
    license_path = args.out / "MNIST_SUBSET_LICENSE.md"
    license_path.write_text(_license_text(args, train_idx, test_idx, npz_path), encoding="utf-8")
    print(f"wrote {npz_path} ({npz_path.stat().st_size} bytes) and {license_path}")


if __name__ == "__main__":
    main()
