"""Makes docs/images/illumination.png: the archive and history of a real run.

Usage (from the repository root, takes a few minutes on two CPU cores)::

    .venv/bin/python tools/make_illumination_figure.py [../shared/data]

Evolves the seed genome on a 6000/1000 MNIST subset over two measures
(layers × parameters) and draws ``gn.plot.archive`` and ``gn.plot.history``
side by side with the library's own plotting functions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import galapagos_nao as gn  # noqa: E402

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "images" / "illumination.png"


def main(data_dir: str) -> None:
    """Runs the evolution and writes the figure."""
    task = gn.datasets.subset(gn.datasets.mnist(data_dir), 6000, 1000, seed=0)
    gn.Parameters.put(gn.Selection, {"measures": ["layers", "params"], "complexity_levels": 4})
    gn.Parameters.put("orchestration", {"generation_size": 8})
    run = gn.evolve(gn.example.seed_layers(), 12, task, seed=2024)
    run.wait(progress=True)
    print(run, gn.Selection.stats(), sep="\n")
    figure, (left, right) = plt.subplots(1, 2, figsize=(12.0, 4.4), layout="constrained")
    gn.plot.archive(ax=left)
    gn.plot.history(ax=right)
    figure.savefig(OUTPUT, dpi=80)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
