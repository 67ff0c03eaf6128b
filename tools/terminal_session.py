"""Types the README's session into a real IPython in a tmux terminal and prints the screen.

Usage (the README's transcripts come from this, unedited):

    GN_DATA_DIR=../shared/data .venv/bin/python tools/terminal_session.py > session.txt
    GN_DATA_DIR=../shared/data .venv/bin/python tools/terminal_session.py steering > steer.txt

    GN_DATA_DIR=../shared/data .venv/bin/python tools/terminal_session.py conv > conv.txt

The second types the "Steering a run" session, in a scratch ``GN_HOME`` so that
its workspace and journal start empty; ``conv`` the image genomes. And

    GN_DATA_DIR=../shared/data .venv/bin/python tools/terminal_session.py experiments > exp.txt

types the "Experiments" session (two named experiments, the command line kept
out of the one IPython writes, a switch back) in a scratch ``GN_HOME``, and
after the cells marked for it draws ``python -m galapagos_nao watch --once``
of that experiment in a second, 80-column terminal: those screens follow the
transcript.

Unlike an in-process shell, this is what a person sees: IPython's own prompt in
a terminal, progress bars drawn by tqdm, log lines from the background run, and
a real Ctrl-C (tmux ``send-keys C-c``) pressed while ``run.wait(progress=True)``
waits. Each cell is typed once the previous prompt is back; some cells then
wait a little longer, as a person reading the output would.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# One tmux session per run of this tool: two captures at once must not type into each other.
SESSION_NAME = f"gn-readme-{os.getpid()}"

#: (cell, seconds to let pass after its prompt returns, Ctrl-C after that many seconds or None)
CELLS: list[tuple[str, float, float | None]] = [
    ("import galapagos_nao as gn", 0, None),
    ("run = gn.example.short_example()", 0, None),
    ("run", 0, None),
    ("run.wait(progress=True)", 0, None),
    ("gn.Selection.get_all()", 0, None),
    ("run = gn.example.infinite_example()", 0, None),
    ("run.wait(progress=True)", 0, 12.0),
    ("run", 0, None),
    ("net = gn.Selection.get_all()[max(gn.Selection.get_all())]", 0, None),
    ("gn.Library.put(net)", 0, None),
    ('gn.Parameters.put(gn.Selection, {"complexity_levels": 4})', 0, None),
    ("gn.Selection.put_unevaluated(gn.Library.get(net.id))", 0, None),
    ("run.join(20)", 0, None),
    ("gn.Selection.get_all()", 0, None),
    ("net.model()", 0, None),
    ("run.stop(); run.join()", 0, None),
    ("run", 0, None),
]

#: The README's "Steering a run": curate a continual run while it trains, then replay it.
STEERING_CELLS: list[tuple[str, float, float | None]] = [
    ("import galapagos_nao as gn; gn.log_level('quiet')", 0, None),
    ("task = gn.datasets.subset(gn.datasets.mnist(), 3000, 1000)", 0, None),
    ('gn.Parameters.put(gn.orchestration, {"generation_size": 4})', 0, None),
    (
        'gn.Parameters.put(gn.evolution, {"max_layers": 6, "forbid": ["sigmoid", "dropout"]})',
        0,
        None,
    ),
    ('run = gn.evolve_continual([("dense", [32, "relu"])], task, seed=0)', 4, None),
    ("run", 0, None),
    ("cells = list(gn.Selection.elites()); cells", 0, None),
    ("gn.Selection.pin(cells[0])", 0, None),
    ("gn.Selection.favor(cells[-1], 3)", 2, None),
    ("child = gn.breed(gn.Selection.get(cells[0]), gn.Selection.get(cells[-1])); child", 0, None),
    ("gn.Selection.put_unevaluated(child)", 3, None),
    ("gn.Selection.veto(min(gn.Selection.elites().values(), key=lambda n: n.val_acc))", 2, None),
    ("run.stop(); run.join()", 0, None),
    ("gn.Selection", 0, None),
    ("gn.journal()", 0, None),
    ("replay = gn.journal.replay(task); replay", 0, None),
    ("replay.differences(gn.Selection)", 0, None),
    (
        'gn.journal.to_script("session.py", '
        'task="gn.datasets.subset(gn.datasets.mnist(), 3000, 1000)")',
        0,
        None,
    ),
    ("!python session.py | head -4", 0, None),
]


#: The README's image genomes: a CNN evolves, the archive binned by compute (flops).
CONV_CELLS: list[tuple[str, float, float | None]] = [
    ("import galapagos_nao as gn; gn.log_level('quiet')", 0, None),
    ("task = gn.datasets.subset(gn.datasets.mnist(), 3000, 1000)", 0, None),
    ("gn.example.conv_layers()", 0, None),
    (
        'gn.Parameters.put(gn.Selection, {"measures": ["flops"], "measure_levels": {"flops": 3}})',
        0,
        None,
    ),
    (
        'gn.Parameters.put(gn.evolution, {"layer_types": {"conv2d": [16, 3, "relu"], '
        '"max_pool": [2], "dense": [64, "relu"], "dropout": [0.25]}})',
        0,
        None,
    ),
    ("run = gn.example.conv_example(task, generations=4); run.wait(progress=True)", 0, None),
    ("gn.Selection", 0, None),
    ("best = max(gn.Selection.elites().values(), key=lambda n: n.val_acc); best.flops", 0, None),
    ("best", 0, None),
    ('gn.validate([("dense", [64, "relu"]), ("conv2d", [8, 3, "relu"])], (1, 28, 28))', 0, None),
    ("best.predict(task.x_test[:8]), task.y_test[:8]", 0, None),
    ('gn.plot.archive().savefig("conv_archive.png")', 0, None),
]


#: The "Experiments" session; the fourth item names the experiment whose ``watch``
#: screen is drawn (80 columns) once the cell has returned.
EXPERIMENT_CELLS: list[tuple[str, float, float | None, str | None]] = [
    ("import galapagos_nao as gn; gn.log_level('quiet')", 0, None, None),
    ("task = gn.datasets.subset(gn.datasets.mnist(), 3000, 1000)", 0, None, None),
    ('gn.experiment("subset")', 0, None, None),
    ('run = gn.evolve_continual([("dense", [32, "relu"])], task, seed=0)', 8, None, None),
    ("cell = next(iter(gn.Selection.elites())); gn.Selection.pin(cell)", 0, None, None),
    ("gn.Selection.favor(cell, 3)", 2, None, "subset"),
    ("!python -m galapagos_nao --experiment subset --generations 1 2>&1 | tail -1", 0, None, None),
    ("run.stop(); run.join(); run", 0, None, "subset"),
    ('gn.experiment("split")', 0, None, None),
    (
        'run = gn.evolve_continual([("dense", [32, "relu"])], '
        "tasks=gn.datasets.split_mnist(task), generations_per_task=2, seed=1)",
        0,
        None,
        None,
    ),
    ("run.join(60)", 0, None, None),
    ("run.stop(); run.join(); run", 0, None, "split"),
    ('gn.experiment("subset")', 0, None, None),
    ("gn.Selection", 0, None, None),
    ("gn.experiments()", 0, None, None),
    ("gn.journal()", 0, None, None),
]


def tmux(*args: str) -> str:
    """Runs one tmux command and returns what it printed."""
    return subprocess.run(
        ["tmux", *args], check=True, capture_output=True, text=True, timeout=30
    ).stdout


def screen(session: str = SESSION_NAME) -> str:
    """The whole pane, scrollback included."""
    return tmux("capture-pane", "-p", "-J", "-S", "-", "-t", session)


def watch_screen(env: str, folder: str, experiment: str) -> str:
    """One ``watch --once`` frame of ``experiment``, drawn in an 80-column terminal."""
    side = f"{SESSION_NAME}-watch"
    python = shlex.quote(str(REPO / ".venv" / "bin" / "python"))
    command = (
        f"cd {folder} && {env} {python} -m galapagos_nao watch --once "
        f"--experiment {shlex.quote(experiment)}; echo WATCH-DONE"
    )
    subprocess.run(["tmux", "kill-session", "-t", side], capture_output=True, check=False)
    tmux("new-session", "-d", "-s", side, "-x", "80", "-y", "45")
    tmux("send-keys", "-t", side, "-l", command)
    tmux("send-keys", "-t", side, "Enter")
    deadline = time.monotonic() + 120
    done = re.compile(r"^WATCH-DONE$", re.M)  # the echo's own line, not the typed command
    while not done.search(screen(side)) and time.monotonic() < deadline:
        time.sleep(0.3)
    text = screen(side)
    subprocess.run(["tmux", "kill-session", "-t", side], capture_output=True, check=False)
    start = text.find("Galápagos Nǎo watch")
    if start < 0:
        return text.rstrip()  # what the terminal showed instead (an error): said as it is
    drawn = text[start:]
    return drawn[: done.search(drawn).start() if done.search(drawn) else None].rstrip()


def wait_for_prompt(number: int, timeout: float = 900) -> None:
    """Waits until IPython shows ``In [number]:``, i.e. the previous cell has returned."""
    deadline = time.monotonic() + timeout
    pattern = re.compile(rf"^In \[{number}\]:", re.M)
    while not pattern.search(screen()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no prompt In [{number}] after {timeout} s:\n{screen()}")
        time.sleep(0.3)


def main(argv: list[str]) -> int:
    """Starts IPython in tmux, types every cell, prints the final screen."""
    steering = argv in (["steering"], ["conv"], ["experiments"])
    plain = {"steering": STEERING_CELLS, "conv": CONV_CELLS}.get(argv[0] if argv else "", CELLS)
    marked: list[tuple[str, float, float | None, str | None]] = (
        EXPERIMENT_CELLS if argv == ["experiments"] else [(*cell, None) for cell in plain]
    )
    side_screens: list[str] = []
    ipython = REPO / ".venv" / "bin" / "ipython"
    env = f"GN_DATA_DIR={shlex.quote(os.environ.get('GN_DATA_DIR', ''))}"
    folder = shlex.quote(str(REPO))
    if steering:  # a scratch home and folder: an empty workspace, and session.py lands there
        folder = shlex.quote(tempfile.mkdtemp(prefix="gn-steering-"))
        venv = shlex.quote(str(REPO / ".venv" / "bin"))  # as an activated venv: `!python` is ours
        env += f" GN_HOME={folder} PYTHONPATH={shlex.quote(str(REPO))} PATH={venv}:$PATH"
    command = f"cd {folder} && {env} {ipython} --no-banner --colors=NoColor"
    subprocess.run(["tmux", "kill-session", "-t", SESSION_NAME], capture_output=True, check=False)
    tmux("new-session", "-d", "-s", SESSION_NAME, "-x", "150", "-y", "50")
    tmux("set-option", "-t", SESSION_NAME, "history-limit", "20000")
    tmux("send-keys", "-t", SESSION_NAME, "-l", command)
    tmux("send-keys", "-t", SESSION_NAME, "Enter")
    try:
        for number, (cell, pause, interrupt_after, watched) in enumerate(marked, start=1):
            wait_for_prompt(number)
            tmux("send-keys", "-t", SESSION_NAME, "-l", cell)
            tmux("send-keys", "-t", SESSION_NAME, "Enter")
            if interrupt_after is not None:
                time.sleep(interrupt_after)
                tmux("send-keys", "-t", SESSION_NAME, "C-c")
            wait_for_prompt(number + 1)
            time.sleep(pause)
            if watched is not None:
                frame = watch_screen(env, folder, watched)
                side_screens.append(f"--- watch --experiment {watched}, after In [{number}] ---")
                side_screens.append(frame)
        time.sleep(1)
        text = screen()
    finally:
        tmux("send-keys", "-t", SESSION_NAME, "-l", "exit")
        tmux("send-keys", "-t", SESSION_NAME, "Enter")
        time.sleep(1)
        subprocess.run(["tmux", "kill-session", "-t", SESSION_NAME], capture_output=True)
    start = text.find("In [1]:")
    sys.stdout.write(text[start:].rstrip() + "\n")
    for part in side_screens:
        sys.stdout.write("\n" + part + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
