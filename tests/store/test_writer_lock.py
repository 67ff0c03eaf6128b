"""The writer lock: not followed through links, not inherited by children, not unlinkable."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from galapagos_nao.store.workspace import Workspace, WorkspaceError, WorkspaceLocked

REPO = Path(__file__).resolve().parents[2]


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim.safetensors"
    victim.write_bytes(b"precious")
    (tmp_path / "w.db.lock").symlink_to(victim)
    for read_only in (None, False):
        with pytest.raises(WorkspaceError, match=r"w\.db\.lock.*(symbolic link|regular file)"):
            Workspace(tmp_path / "w.db", read_only=read_only)
    assert victim.read_bytes() == b"precious"
    (tmp_path / "w.db.lock").unlink()  # once the planted link is gone, the workspace opens
    Workspace(tmp_path / "w.db", read_only=False).close()
    assert victim.read_bytes() == b"precious"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_lock_that_is_not_a_regular_file_is_refused(tmp_path, kind):
    lock = tmp_path / "w.db.lock"
    os.mkfifo(lock) if kind == "fifo" else lock.mkdir()
    with pytest.raises(WorkspaceError, match=r"w\.db\.lock.*not a regular file"):
        Workspace(tmp_path / "w.db")


def test_deleting_the_lock_file_lets_no_second_writer_in(tmp_path):
    writer = Workspace(tmp_path / "w.db")
    (tmp_path / "w.db.lock").unlink()
    with pytest.raises(WorkspaceLocked, match=f"process {os.getpid()}"):
        Workspace(tmp_path / "w.db", read_only=False)
    result = subprocess.run(
        [sys.executable, "-c", TRY_TO_WRITE, str(tmp_path / "w.db")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.stdout.strip() == f"locked: process {os.getpid()}", result.stderr
    writer.close()
    Workspace(tmp_path / "w.db", read_only=False).close()


TRY_TO_WRITE = textwrap.dedent(
    """
    import re, sys
    from galapagos_nao.store.workspace import Workspace, WorkspaceLocked
    try:
        Workspace(sys.argv[1], read_only=False).close()
        print("writer")
    except WorkspaceLocked as error:
        print("locked:", re.search(r"process \\d+", str(error)).group(0))
    """
)

FORK_AND_WAIT = textwrap.dedent(
    """
    import os, sys, time
    from galapagos_nao.store.workspace import Workspace
    store = Workspace(sys.argv[1], read_only=False)
    child = os.fork()
    if child == 0:
        time.sleep(120)  # a helper that outlives its parent
        os._exit(0)
    print(child, flush=True)
    time.sleep(120)
    """
)


@pytest.mark.timeout(120)
def test_a_killed_writers_forked_child_does_not_keep_the_lock(tmp_path):
    path = tmp_path / "w.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", FORK_AND_WAIT, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    child = None
    try:
        assert writer.stdout is not None
        child = int(writer.stdout.readline())
        with pytest.raises(WorkspaceLocked, match=f"process {writer.pid}"):
            Workspace(path, read_only=False)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        os.kill(child, 0)  # the child is alive ...
        with Workspace(path, read_only=False) as store:  # ... and holds nothing
            assert not store.read_only
    finally:
        if writer.poll() is None:
            writer.kill()
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
