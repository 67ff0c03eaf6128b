"""A full disk, for real: a 2 MB tmpfs in a private mount namespace, filled to the last byte.

The child process mounts the tmpfs (``unshare -rm``: no privileges needed where
user namespaces are allowed) and reports what it saw as JSON lines; the test
skips with the reason when this machine cannot mount one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import galapagos_nao as gn
    from galapagos_nao.store.library import Library
    from galapagos_nao.store.workspace import Workspace

    def say(**fields):
        print(json.dumps(fields), flush=True)

    root = Path(sys.argv[1])
    store = Workspace(root / "w.db")
    library = Library(workspace=store)
    kept = gn.Network([("dense", [8, "relu"])])
    library.put(kept)
    with open(root / "filler", "wb") as filler:  # every byte left
        try:
            while True:
                filler.write(bytes(65536))
        except OSError as error:
            say(filled=error.errno)
    big = gn.Network([("dense", [256, "relu"])])
    try:
        library.put(big)
        say(put="accepted")
    except Exception as error:
        say(put=type(error).__name__, message=str(error), known=sorted(library.get_all()))
    try:
        big.save(root / "big.safetensors")
        say(save="written")
    except OSError as error:
        say(save=error.errno, files=sorted(os.listdir(root)))
    os.remove(root / "filler")
    store.close()
    say(reopened=sorted(Library(workspace=Workspace(root / "w.db")).get_all()), kept=kept.id)
    """
)


def run_on_a_full_disk(tmp_path: Path) -> list[dict]:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs util-linux's unshare to mount a private tmpfs")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    (tmp_path / "child.py").write_text(CHILD)
    command = (
        f"mount -t tmpfs -o size=2m tmpfs '{mount_point}' || exit 77; "
        f"exec '{sys.executable}' '{tmp_path / 'child.py'}' '{mount_point}'"
    )
    result = subprocess.run(
        [unshare, "-rm", "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "GN_HOME": str(tmp_path)},
        check=False,
    )
    if result.returncode in (1, 77) and not result.stdout:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_a_full_disk_fails_the_write_clearly_and_loses_nothing(tmp_path):
    filled, put, save, reopened = run_on_a_full_disk(tmp_path)
    assert filled == {"filled": 28}  # ENOSPC: the disk really was full
    # The put is refused with a message naming the file, and the session's view is unchanged.
    assert put["put"] == "WorkspaceError"
    assert "w.db" in put["message"] and "full" in put["message"]
    assert put["known"] == [reopened["kept"]]
    # A network file is not left half-written: the atomic write leaves no trace.
    assert save["save"] == 28 and not [f for f in save["files"] if "big" in f]
    # After the space comes back, the workspace opens with what it held.
    assert reopened["reopened"] == [reopened["kept"]]
