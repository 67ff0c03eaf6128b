"""Smoke tests of the conv benchmarks on tiny data: they run and report sane figures.

The figures themselves (overhead, accuracy within a budget) are measured by the
benchmarks on full MNIST, never asserted here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from galapagos_nao.core import datasets

# The benchmark package sits at the repository root, beside the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import report  # noqa: E402
from benchmarks.conv_bench import conv_row  # noqa: E402
from benchmarks.sections import targets  # noqa: E402


@pytest.fixture(scope="module")
def tiny_task(small_mnist: datasets.Task) -> datasets.Task:
    """300 real MNIST training images: a conv epoch takes a fraction of a second."""
    return datasets.subset(small_mnist, 300, 100, seed=2)


def test_the_conv_row_times_ours_and_the_plain_loop_on_the_same_network(
    tiny_task: datasets.Task,
) -> None:
    row = conv_row(tiny_task, seed=3, repeats=1, evolve_path=True)
    assert row["plain_cpu_ms"] > 0 and row["fit_cpu_ms"] > 0 and row["evolve_cpu_ms"] > 0
    assert row["overhead"] == pytest.approx(row["fit_cpu_ms"] / row["plain_cpu_ms"] - 1)
    assert row["train_split"] == 270  # the same validation split as fit's
    assert all(0.0 <= row[key] <= 1.0 for key in ("plain_test_acc", "fit_test_acc"))
    table = report.format_table(
        {"machine": {"summary": "test", "load_start": "0"}, "seed": 3, "conv": row}
    )
    assert "ours: through evolve" in table and "plain PyTorch loop" in table
    (target,) = targets({"conv": row})
    assert target["met"] == (row["overhead"] <= 0.10)


def test_a_budgeted_quality_run_reports_every_level_s_elite_and_the_best(
    tiny_task: datasets.Task,
) -> None:
    from benchmarks.quality import format_report, run_quality, targets

    figures = run_quality(
        tiny_task,
        "conv",
        0.05,
        levels=2,
        run_seed=4,
        overrides={"orchestration": {"generation_size": 2}},
    )
    assert figures["generations"] >= 1 and figures["candidates"] >= 2
    assert figures["seconds"] < 60  # the budget stops a continual run
    levels = [row["level"] for row in figures["elites"]]
    assert levels and set(levels) <= {1, 2}
    best = figures["best"]
    assert best["val_acc"] == max(row["val_acc"] for row in figures["elites"])
    # the conv search's own settings reach the run: convolutions can be drawn, at Adam 0.001
    assert {"conv2d", "max_pool"} <= set(figures["settings"]["evolution"]["layer_types"])
    assert figures["settings"]["training"]["learning_rate"] == 0.001
    figures.update(task="tiny", machine="test", load_start="0", load_end="0", training="t")
    text = format_report(figures, 2)
    assert f"test_acc {best['test_acc']:.4f}" in text
    assert [met for _, met, _ in targets(figures, 2)] == [
        best["test_acc"] >= 0.99,
        len(levels) == 2 and min(r["test_acc"] for r in figures["elites"]) >= 0.98,
    ]


def test_the_continual_conv_row_evolves_the_seed_cnn_across_split_mnist(
    tiny_task: datasets.Task,
) -> None:
    from benchmarks.continual import Budget, evolution_run

    stream = datasets.split_mnist(tiny_task)
    metrics = evolution_run(stream, Budget(1, 20, "balanced", 1), 20, seed=5, conv=True)
    assert len(metrics.matrix) == len(stream) == 5
    assert metrics.acc is not None and 0.0 <= metrics.acc <= 1.0
    assert metrics.bwt is not None and -1.0 <= metrics.bwt <= 1.0
