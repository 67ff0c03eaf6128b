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
