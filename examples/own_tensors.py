"""Evolve networks on your own data: tensors or numpy arrays in, a trained torch module out.

    python examples/own_tensors.py            # 6,000 points, 10 generations
    python examples/own_tensors.py --quick    # 1,200 points, 3 generations

The data here are three interleaved spirals in the plane, made with numpy: swap
in your own arrays of shape (samples, features...) and integer labels.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import galapagos_nao as gn


def spirals(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy points on three spiral arms: inputs (n, 2) float32, labels (n,) int64."""
    labels = rng.integers(0, 3, size=n)
    radius = rng.uniform(0.1, 1.0, size=n)
    angle = 3.0 * radius + labels * (2 * np.pi / 3) + rng.normal(0, 0.15, size=n)
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return points.astype(np.float32), labels.astype(np.int64)


def main() -> None:
    """Parses the command line and runs the example."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less data, fewer generations")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = 1_200 if args.quick else 6_000
    x_train, y_train = spirals(n, rng)
    x_test, y_test = spirals(n // 4, rng)

    # A task from arrays (or tensors). They are used as given: no standardization,
    # so the trained networks take inputs on this same scale.
    task = gn.datasets.from_tensors(x_train, y_train, x_test, y_test, name="spirals")
    print(task)

    gn.log_level("generation")  # one line per generation on the console
    # Small data trains in small batches; start from one hidden layer and let it grow.
    gn.Parameters.put(gn.training, {"epochs": 5 if args.quick else 20})
    gn.Parameters.put(gn.evolution, {"layer_types": {"dense": [32, "tanh"]}})
    run = gn.evolve([("dense", [16, "relu"])], 3 if args.quick else 10, task, seed=0)
    run.wait()

    best = max(gn.Selection.elites().values(), key=lambda net: net.val_acc)
    print(f"best: {best.layers}, test_acc {best.test_acc:.3f}")
    # Predict on new points: class indices, from a plain torch module.
    points = torch.tensor([[0.5, 0.0], [-0.3, 0.4], [0.0, -0.6]])
    print("predicted classes:", best.predict(points).tolist())
    print(best.model())


if __name__ == "__main__":
    main()
