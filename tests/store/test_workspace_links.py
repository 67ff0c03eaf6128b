"""No escape through links (issue 22, finding 7): a workspace writes only files with one name.

A hard-linked ``workspace.db.lock`` once had a pid written over the linked file,
and a dangling ``workspace.db`` symlink created the database outside its folder.
These tests plant real links and check that nothing outside is touched.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import pytest

from galapagos_nao.store.workspace import Workspace, WorkspaceError

PRECIOUS = b"precious bytes, not a pid\n"


def outside(tmp_path: Path) -> Path:
    """A file in another folder, which a link will point at."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    victim = folder / "victim"
    victim.write_bytes(PRECIOUS)
    return victim


@pytest.mark.parametrize("read_only", [None, False, True])
def test_a_hard_linked_lock_file_is_refused_and_the_linked_file_untouched(tmp_path, read_only):
    victim = outside(tmp_path)
    Workspace(tmp_path / "w.db").close()  # a real workspace, then the planted link
    (tmp_path / "w.db.lock").unlink()
    os.link(victim, tmp_path / "w.db.lock")
    with pytest.raises(WorkspaceError, match=r"w\.db\.lock: the lock file has 2 hard links"):
        Workspace(tmp_path / "w.db", read_only=read_only)
    assert victim.read_bytes() == PRECIOUS
    os.unlink(tmp_path / "w.db.lock")  # the planted link gone, the workspace opens again
    Workspace(tmp_path / "w.db").close()
    assert victim.read_bytes() == PRECIOUS


@pytest.mark.parametrize("read_only", [None, False])
def test_a_dangling_database_symlink_creates_nothing_outside_the_folder(tmp_path, read_only):
    target = tmp_path / "elsewhere" / "created.db"
    target.parent.mkdir()
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "w.db").symlink_to(target)
    with pytest.raises(WorkspaceError, match=r"w\.db: the workspace file is a symbolic link"):
        Workspace(folder / "w.db", read_only=read_only)
    assert not target.exists()
    assert sorted(p.name for p in target.parent.iterdir()) == []


def test_a_database_symlink_to_a_real_workspace_is_refused_for_reading_too(tmp_path):
    real = tmp_path / "real.db"
    Workspace(real).close()
    (tmp_path / "alias.db").symlink_to(real)
    with pytest.raises(WorkspaceError, match=r"alias\.db: the workspace file is a symbolic link"):
        Workspace(tmp_path / "alias.db", read_only=True)


def test_a_hard_linked_database_is_refused_and_its_other_name_unchanged(tmp_path):
    original = tmp_path / "w.db"
    Workspace(original).close()
    before = original.read_bytes()
    folder = tmp_path / "other"
    folder.mkdir()
    os.link(original, folder / "w.db")
    with pytest.raises(WorkspaceError, match=r"the workspace file has 2 hard links"):
        Workspace(folder / "w.db")
    assert original.read_bytes() == before
    assert not (folder / "w.db.lock").exists()


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_symlinked_sqlite_side_file_is_refused(tmp_path, suffix):
    victim = outside(tmp_path)
    Workspace(tmp_path / "w.db").close()
    side = tmp_path / f"w.db{suffix}"
    if side.exists():
        side.unlink()
    side.symlink_to(victim)
    with pytest.raises(WorkspaceError, match=rf"w\.db{suffix}: the .* is a symbolic link"):
        Workspace(tmp_path / "w.db")
    assert victim.read_bytes() == PRECIOUS
    # The workspace itself is intact: once the link is removed it opens and reads.
    side.unlink()
    with Workspace(tmp_path / "w.db") as workspace:
        assert workspace.load_library() == ({}, {})
    with sqlite3.connect(tmp_path / "w.db") as connection:
        assert connection.execute("PRAGMA quick_check").fetchone() == ("ok",)
    connection.close()


#: Every name a workspace writes under, for the sweep below.
NAMES = ("w.db", "w.db.lock", "w.db-wal", "w.db-shm", "w.db-journal", "w.db.exp.lock")


def plant(folder: Path, name: str, kind: str, victim: Path) -> None:
    """Puts a link of ``kind`` under ``name``, where a real file may have been."""
    planted = folder / name
    if planted.exists() or planted.is_symlink():
        planted.unlink()
    if kind == "hard link":
        os.link(victim, planted)
    else:
        planted.symlink_to(victim if kind == "symlink" else folder.parent / "made-by-it")


def use(path: Path, read_only: bool | None, experiment: str) -> None:
    """What a session does with a workspace: open it, write an entry and a journal row, read."""
    with Workspace(path, read_only=read_only, experiment=experiment) as store:
        if not store.read_only:
            store.append_journal([(1.0, 0, None, None, "evolve", {})])
            store.put_library({})
        store.journal_rows()


def test_no_link_under_any_workspace_name_lets_a_write_escape(tmp_path):
    """Each name x link kind x open mode: nothing outside the folder is created or changed."""
    escapes, tried = [], 0
    for name in NAMES:
        for kind in ("symlink", "hard link", "dangling symlink"):
            for read_only in (None, False, True):
                root = tmp_path / f"{len(os.listdir(tmp_path))}"
                root.mkdir()
                victim = outside(root)
                folder = root / "ws"
                use(folder / "w.db", None, "exp")  # a real workspace with both experiments
                use(folder / "w.db", None, "default")
                plant(folder, name, kind, victim)
                tried += 1
                experiment = "exp" if name == "w.db.exp.lock" else "default"
                with contextlib.suppress(WorkspaceError):  # refused, as it should be
                    use(folder / "w.db", read_only, experiment)
                outside_now = sorted(p.name for p in root.iterdir() if p.name != "ws")
                if victim.read_bytes() != PRECIOUS or outside_now != ["elsewhere"]:
                    escapes.append((name, kind, read_only))
    assert tried == len(NAMES) * 3 * 3
    assert escapes == []
