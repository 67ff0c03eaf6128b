"""``make bench``: how fast Galápagos Nǎo trains candidates, against the seed and the machine.

Run it with ``python -m benchmarks`` (see :mod:`benchmarks.__main__`). Modules:
:mod:`~benchmarks.genomes` (the fixed genomes and their FLOPs),
:mod:`~benchmarks.peak` (the matmul limit), :mod:`~benchmarks.engine` (our engine
through ``evolve``), :mod:`~benchmarks.seed_pipeline` (the seed's pipeline in
PyTorch), :mod:`~benchmarks.responsiveness`, :mod:`~benchmarks.memory`,
:mod:`~benchmarks.sections` (one function per part of the table) and
:mod:`~benchmarks.report` (table and JSON). ``benchmarks/gpu.sh`` runs the
throughput part on a GPU.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root.
REPO = Path(__file__).resolve().parent.parent


def default_data_root() -> str:
    """Where the benchmarks read MNIST: ``GN_DATA_DIR``, else ``../shared/data``."""
    return os.environ.get("GN_DATA_DIR") or str(REPO.parent / "shared" / "data")
