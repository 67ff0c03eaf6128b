"""``watch`` in a real terminal (tmux): it follows a run training here and exits on Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets
from galapagos_nao.run.api import Session
from galapagos_nao.store.library import Library
from galapagos_nao.store.workspace import Workspace

TMUX = shutil.which("tmux")
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(TMUX is None, reason="needs tmux to drive a real terminal")


class Terminal:
    """A detached tmux session on its own server (never the user's), read with capture-pane."""

    def __init__(self, socket: Path, command: str) -> None:
        self.base = [str(TMUX), "-S", str(socket)]
        subprocess.run(
            [*self.base, "new-session", "-d", "-s", "watch", "-x", "150", "-y", "50", command],
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},  # this checkout's package, not another
        )

    def screen(self) -> str:
        captured = subprocess.run(
            [*self.base, "capture-pane", "-p", "-t", "watch"], capture_output=True, text=True
        )
        return captured.stdout

    def wait_for(self, found: Callable[[str], bool], what: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if found(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"the terminal never showed {what}; it shows:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "watch", *keys], check=True)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


@pytest.fixture
def folder() -> Iterator[Path]:
    # Short: tmux socket paths are limited to about 100 bytes.
    path = Path(tempfile.mkdtemp(prefix="gnw"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def generation_shown(screen: str) -> int | None:
    found = re.search(r"generation (\d+)", screen)
    return None if found is None else int(found.group(1))


def test_watch_follows_a_training_run_in_a_real_terminal_and_exits_0_on_ctrl_c(folder, small_mnist):
    path = folder / "workspace.db"
    command = (
        f"{sys.executable} -m galapagos_nao watch --workspace {path} --interval 0.3; "
        "echo watch exited $?; sleep 120"
    )
    terminal = Terminal(folder / "tmux.sock", command)
    store = None
    run = None
    try:
        terminal.wait_for(lambda s: "no workspace" in s, "a missing workspace")
        store = Workspace(path)  # the file appears under the running dashboard
        terminal.wait_for(lambda s: "waiting" in s, "a workspace with a writer and no run")
        parameters = Parameters()
        selection = Selection(parameters=parameters)
        library = Library(workspace=store)
        session = Session(parameters=parameters, selection=selection, library=library)
        session.track(selection, store)
        parameters.put("orchestration", {"generation_size": 3, "workers": 1})
        parameters.put("selection", {"complexity_levels": 4})
        task = datasets.subset(small_mnist, 600, 200)
        run = session.evolve_continual([("dense", [8, "relu"])], task, seed=0)

        first = terminal.wait_for(
            lambda s: "running" in s and "archive: layers level" in s, "the running archive"
        )
        assert "coverage" in first and "latest events" in first
        seen = generation_shown(first)
        assert seen is not None
        later = terminal.wait_for(
            lambda s: (generation_shown(s) or -1) > seen, f"a generation after {seen}"
        )
        assert "new elite" in later or "->" in later

        run.stop()
        assert run.join(300)
        terminal.wait_for(lambda s: "stopped" in s and "Run.stop()" in s, "the stopped run")
        terminal.keys("C-c")
        terminal.wait_for(lambda s: "watch exited 0" in s, "a clean exit")
    finally:
        if run is not None:
            run.stop()
            run.join(300)
        if store is not None:
            store.close()
        terminal.close()
