"""Smoke test of the generation-overhead benchmark: it runs the real phases and reports them.

Its figures (seconds per phase at 1,024 children) are measured by ``make bench``,
never asserted here.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The benchmark package sits at the repository root, beside the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import report  # noqa: E402
from benchmarks.generation_overhead import generation_overhead  # noqa: E402
from benchmarks.sections import targets  # noqa: E402


def test_each_phase_of_a_generation_is_timed_and_reported_with_its_target() -> None:
    passes = generation_overhead(48, 16, seed=1)
    assert len(passes) == 2
    for found in passes:
        phases = [found[p] for p in report.OVERHEAD_PHASES]
        assert all(seconds > 0 for seconds in phases)
        assert found["total"] == sum(phases)
        assert found["share_of_target_generation"] == found["total"] / (48 * 60 / 15_000)
        assert 3 <= found["groups"] < 48  # mutated children, grouped: some together
    figures = {"machine": {"summary": "test", "load_start": "0"}, "seed": 1, "overhead": passes}
    table = report.format_table(figures | {"targets": targets(figures)})
    assert "A generation of 48 mutated children besides training" in table
    assert "CPU-side work of a generation of 1,024" in table
