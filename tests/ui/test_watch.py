"""The watch dashboard: drawn from a real run's workspace, its sparklines, and the CLI word."""

from __future__ import annotations

import sys

import pytest
from rich.console import Console

from galapagos_nao.__main__ import main, parse_watch_args
from galapagos_nao.store.watch_reader import WorkspaceReader
from galapagos_nao.store.watch_snapshot import WatchSnapshot
from galapagos_nao.ui import watch


def drawn(snapshot: WatchSnapshot, width: int = 140) -> str:
    console = Console(record=True, width=width, force_terminal=False)
    console.print(watch.render(snapshot))
    return console.export_text()


def test_the_dashboard_of_a_real_run_shows_the_grid_marks_trends_and_events(watched_workspace):
    with WorkspaceReader(watched_workspace["path"]) as reader:
        text = drawn(reader.poll())
    assert "finished  run 1, seed 0  generation 2" in text
    assert "archive: layers level" in text
    for net in watched_workspace["elites"].values():
        assert f"{net.val_acc:.4f}" in text
    assert "P×3" in text  # the pinned, favored cell
    assert "·" in text or len(watched_workspace["elites"]) == 4  # empty cells are dots
    for name in ("coverage", "QD-score", "best val_acc", "generations 0..2"):
        assert name in text
    assert "Selection.favor(cell=" in text and "new elite" in text


def test_a_missing_workspace_is_said_not_raised(tmp_path):
    with WorkspaceReader(tmp_path / "none.db") as reader:
        text = drawn(reader.poll())
    assert "no workspace: no workspace file here yet" in text


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 0.5, 1.0], "▁▅█"),
        ([2, 2, 2], "▄▄▄"),
        ([None, 1.0, None, 3.0], " ▁ █"),
        ([], ""),
        ([None], ""),
    ],
)
def test_sparkline_scales_between_min_and_max(values, expected):
    assert watch.sparkline(values) == expected


def test_sparkline_keeps_the_last_width_values():
    assert watch.sparkline(range(100), width=5) == "▁▃▅▆█"


def test_the_cli_word_draws_one_frame(watched_workspace, capsys):
    assert main(["watch", "--workspace", str(watched_workspace["path"]), "--once"]) == 0
    assert "archive: layers level" in capsys.readouterr().out


def test_watch_flags_are_checked(capsys):
    with pytest.raises(SystemExit) as caught:
        parse_watch_args(["--interval", "0"])
    assert caught.value.code == 2
    assert "--interval must be > 0" in capsys.readouterr().err


def test_missing_rich_names_the_extra(monkeypatch, tmp_path, capsys):
    # rich is installed here, so its absence is simulated: the one fault we cannot produce.
    monkeypatch.setitem(sys.modules, "rich", None)
    with pytest.raises(ImportError, match=r"pip install 'galapagos-nao\[watch\]'"):
        watch.render(WatchSnapshot("w.db", 0.0))
    assert main(["watch", "--workspace", str(tmp_path / "w.db"), "--once"]) == 2
    assert "galapagos-nao[watch]" in capsys.readouterr().err


def test_at_80_columns_every_column_shows_and_a_moved_bin_says_re_binned():
    import time

    from galapagos_nao.store.watch_snapshot import snapshot_of
    from galapagos_nao.store.workspace import RunSummary

    now = time.time()

    def row(generation, best, changes=()):
        return {
            "generation": generation,
            "started": now - 10 + generation,
            "seconds": 0.5,
            "evaluated": 2,
            "failed": 0,
            "best": best,
            "archive": {"changes": list(changes)},
        }

    first = {
        (1, 1): {"val_acc": 0.93, "test_acc": 0.92},
        (2, 3): {"val_acc": 0.91, "test_acc": 0.9},
        (3, 1): {"val_acc": 0.92, "test_acc": 0.9},
    }
    # Generation 1: the levels moved; cell (1, 1) now holds the other elite, no newcomer won.
    second = {
        (1, 1): {"val_acc": 0.91, "test_acc": 0.9},
        (2, 4): {"val_acc": 0.95, "test_acc": 0.94},
        (3, 1): {"val_acc": 0.88, "test_acc": 0.87},
    }
    new = {"cell": [2, 4], "old_id": None, "new_id": "abcdef12" * 4, "new_fitness": 0.95}
    # A newcomer less fit than the elite it "replaced": the incumbent moved to another cell.
    lower = {
        "cell": [3, 1],
        "old_id": "c" * 32,
        "old_fitness": 0.92,
        "new_id": "d" * 32,
        "new_fitness": 0.88,
    }
    summary = RunSummary(
        experiment="subset",
        run_id=1,
        generation=1,
        written=now,
        selection={
            "measures": ["layers", "params"],
            "complexity_levels": 3,
            "measure_levels": {"params": 4},
        },
        elites={(1, 1): "a" * 32, (2, 4): "b" * 32},
        history=[row(0, first), row(1, second, [new, lower])],
        curation={"pinned": [[1, 1]], "favored": [[[1, 1], 3.0]], "vetoed": []},
    )
    text = drawn(snapshot_of(summary, "/tmp/workspace.db", now, writer=4242), width=80)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "experiment subset" in text and "generation 1" in text
    events = text[text.index("latest events") :]
    assert " gen " in events.splitlines()[2] + " "  # the generation column survives
    assert "re-binned" in events and "cell 1,1: 0.9300 -> 0.9100" in events
    assert "cell 2,4" not in [line for line in events.splitlines() if "re-binned" in line][0]
    moved = [line for line in events.splitlines() if "cell 3,1" in line]
    assert len(moved) == 1 and "re-binned" in moved[0] and "replaced" not in moved[0]
    assert "P×3" in text


def test_a_task_switch_is_said_as_such_not_as_moved_bins():
    import time

    from galapagos_nao.store.watch_snapshot import snapshot_of
    from galapagos_nao.store.workspace import RunSummary

    now = time.time()

    def row(generation, val, task, changes=()):
        return {
            "generation": generation,
            "started": now - 10 + generation,
            "seconds": 0.5,
            "evaluated": 2,
            "failed": 0,
            "best": {1: {"val_acc": val, "test_acc": val}},
            "archive": {"changes": list(changes), "task": task},
        }

    # The stream moved to task b: the archive was re-scored and a lower elite took cell 1.
    lower = {
        "cell": 1,
        "old_id": "c" * 32,
        "old_fitness": 1.0,
        "new_id": "d" * 32,
        "new_fitness": 0.6,
    }
    better = {
        "cell": 1,
        "old_id": "b" * 32,
        "old_fitness": 0.9,
        "new_id": "c" * 32,
        "new_fitness": 1.0,
    }
    summary = RunSummary(
        run_id=1,
        generation=2,
        written=now,
        selection={"measures": ["layers"], "complexity_levels": 1},
        elites={1: "d" * 32},
        history=[row(0, 0.9, "a"), row(1, 1.0, "a", [better]), row(2, 0.6, "b", [lower])],
    )
    snapshot = snapshot_of(summary, "/tmp/workspace.db", now)
    kinds = [event.kind for event in snapshot.events]
    assert "task" in kinds and "re-binned" not in kinds
    assert any(e.kind == "task" and "'b'" in e.text for e in snapshot.events)
