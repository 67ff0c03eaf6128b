from __future__ import annotations

import json

import pytest

from galapagos_nao import evolve
from galapagos_nao.archive.history import ArchiveStats, HistoryEntry, archive_stats
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.network import Network
from galapagos_nao.example import seed_layers


def net(n_layers: int, val_acc: float, n_params: int | None = None) -> Network:
    fields = {"val_acc": val_acc, "test_acc": val_acc - 0.1}
    if n_params is None:
        return Network([("dense", [8, "relu"])] * n_layers, **fields)
    # A real genome with exactly n_params (the archive checks the count): one-unit layers
    # after an input of the remaining features, 2 classes.
    shape = (n_params - 2 * n_layers - 3,)
    layers = [("dense", [1, "relu"])] * n_layers
    return Network(layers, input_shape=shape, n_classes=2, n_params=n_params, **fields)


@pytest.fixture
def selection() -> Selection:
    selection = Selection(parameters=Parameters())
    # Toy parameter counts (10, 1000): binned between the pool's extremes, not MNIST's range.
    selection.parameters.put(selection, {"measure_ranges": {}})
    return selection


def test_archive_stats_by_hand():
    stats = archive_stats({1: net(1, 0.5), 3: net(3, 0.7)}, 4, generation=2, evaluated=5, failed=1)
    assert stats.filled == 2 and stats.cells == 4
    assert stats.coverage == 0.5
    assert stats.qd_score == pytest.approx(1.2)
    assert stats.best_fitness == 0.7 and stats.mean_fitness == pytest.approx(0.6)
    assert stats.best_test_acc == pytest.approx(0.6)  # the fittest elite's test accuracy
    assert (stats.generation, stats.evaluated, stats.failed) == (2, 5, 1)


def test_archive_stats_of_an_empty_archive():
    stats = archive_stats({}, 2)
    assert (stats.filled, stats.coverage, stats.qd_score) == (0, 0.0, 0.0)
    assert stats.best_fitness is None and stats.mean_fitness is None and stats.best_test_acc is None


def test_record_generation_keeps_metrics_and_changes(selection):
    a, b = net(2, 0.6), net(4, 0.7)
    changes = selection.select([a, b])
    first = selection.record_generation(0, changes, evaluated=2, failed=0, seconds=1.5)
    assert first.stats.coverage == 1.0 and first.stats.qd_score == pytest.approx(1.3)
    assert first.new_cells == 2 and first.replaced == 0
    assert {(c.cell, c.old_id, c.new_id, c.new_fitness) for c in first.changes} == {
        (1, None, a.id, 0.6),
        (2, None, b.id, 0.7),
    }
    better = net(3, 0.9)
    changes = selection.select([better, net(1, 0.1)])
    second = selection.record_generation(1, changes, evaluated=1, failed=1, seconds=2.0)
    assert [(c.cell, c.old_id, c.old_fitness, c.new_id, c.new_fitness) for c in second.changes] == [
        (2, b.id, 0.7, better.id, 0.9)
    ]
    assert second.new_cells == 0 and second.replaced == 1
    assert second.stats.qd_score == pytest.approx(1.5)
    assert (second.stats.evaluated, second.stats.failed) == (1, 1)
    assert second.stats.elapsed == pytest.approx(3.5)  # summed over recorded generations
    assert selection.history() == [first, second]
    assert selection.stats() == second.stats


def test_stats_before_any_generation_describe_the_archive(selection):
    assert selection.stats().cells == 2 and selection.stats().filled == 0
    selection.put(1, net(1, 0.8))
    stats = selection.stats()
    assert stats.generation is None and stats.filled == 1 and stats.qd_score == pytest.approx(0.8)
    assert selection.history() == []


def test_cells_follow_the_grid_of_two_measures(selection):
    selection.parameters.put(
        selection, {"measures": ["layers", "params"], "measure_levels": {"params": 3}}
    )
    changes = selection.select([net(1, 0.5, n_params=10), net(2, 0.6, n_params=1000)])
    entry = selection.record_generation(0, changes, evaluated=2, failed=0, seconds=0.1)
    assert entry.stats.cells == 6 and entry.stats.filled == 2
    assert entry.stats.coverage == pytest.approx(2 / 6)
    assert {c.cell for c in entry.changes} == {(1, 1), (2, 3)}


def test_history_round_trips_through_json_with_tuple_cells(selection):
    selection.parameters.put(selection, {"measures": ["layers", "params"]})
    changes = selection.select([net(1, 0.5, n_params=10), net(2, 0.6, n_params=1000)])
    selection.record_generation(0, changes, evaluated=2, failed=0, seconds=0.1)
    text = json.dumps([entry.as_dict() for entry in selection.history()])
    restored = Selection(parameters=Parameters())
    restored.restore_history(json.loads(text))
    assert restored.history() == selection.history()
    assert all(isinstance(c.cell, tuple) for c in restored.history()[0].changes)


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ({"stats": {}}, r"entries\[1\]: data is not a history entry"),
        (None, r"entries\[1\] must be a HistoryEntry or a dict, got None"),
    ],
)
def test_restore_history_rejects_bad_entries_and_changes_nothing(selection, bad, fragment):
    selection.record_generation(
        0, selection.select([net(1, 0.5)]), evaluated=1, failed=0, seconds=0.1
    )
    before = selection.history()
    with pytest.raises(ValueError, match=fragment):
        selection.restore_history([before[0].as_dict(), bad])
    assert selection.history() == before


def test_clear_forgets_the_history(selection):
    selection.record_generation(
        0, selection.select([net(1, 0.5)]), evaluated=1, failed=0, seconds=0.1
    )
    selection.clear()
    assert selection.history() == [] and selection.stats().filled == 0


def test_a_real_run_records_every_generation(small_mnist):
    reports = []
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": 2})
    selection = Selection(parameters=parameters)
    evolve(
        seed_layers(), 2, small_mnist, selection=selection, seed=0, hooks=[reports.append]
    ).result(timeout=120)
    history = selection.history()
    assert [entry.stats.generation for entry in history] == [0, 1]
    for entry, report in zip(history, reports, strict=True):
        assert isinstance(entry.stats, ArchiveStats)
        assert (entry.stats.evaluated, entry.stats.failed) == (report.evaluated, report.failed)
        assert entry.stats.evaluated + entry.stats.failed == len(report.outcomes)
        assert [c.new_id for c in entry.changes] == [c.new.id for c in report.changes]
        fitness = [n.val_acc for n in report.elites.values()]
        assert entry.stats.qd_score == pytest.approx(sum(fitness))
        assert entry.stats.best_fitness == pytest.approx(max(fitness))
        assert entry.stats.coverage == pytest.approx(len(fitness) / 2)  # two complexity levels
        assert entry.stats.seconds == pytest.approx(report.seconds)
    assert history[1].stats.elapsed == pytest.approx(
        history[0].stats.seconds + history[1].stats.seconds
    )
    assert history[0].new_cells >= 1  # the first generation fills the empty archive
    assert selection.stats() == history[-1].stats
    assert isinstance(
        HistoryEntry.from_dict(json.loads(json.dumps(history[-1].as_dict()))), HistoryEntry
    )


def test_history_keeps_a_bounded_window_in_ram():
    from galapagos_nao.archive.history import ArchiveStats, History, HistoryEntry

    def entry(generation: int) -> HistoryEntry:
        stats = ArchiveStats(generation, 1, 2, 0.5, 0.9, 0.9, 0.9, 0.9, 4, 0, 1.0, generation + 1.0)
        return HistoryEntry(stats)

    history = History(window=5)
    for generation in range(12):
        history.append(entry(generation))
    assert [e.stats.generation for e in history.entries()] == [7, 8, 9, 10, 11]
    assert len(history) == 5 and history.dropped == 7
    assert history.elapsed() == 12.0
    history.restore([entry(g) for g in range(8)])
    assert [e.stats.generation for e in history.entries()] == [3, 4, 5, 6, 7]
    assert history.dropped == 3
