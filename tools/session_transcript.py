"""Replays the README's IPython session in a real IPython shell and prints what it shows.

Usage (the README's transcript comes from this, output unedited but for elision):

    GN_DATA_DIR=../shared/data .venv/bin/python tools/session_transcript.py 2>&1 | tee session.txt

Each cell is typed into a real ``InteractiveShell`` as a user would; the pauses
between cells stand for the user thinking (training goes on meanwhile). Log lines
from the background run go to stderr, so run with ``2>&1`` to see them in place.
"""

from __future__ import annotations

import sys
import time

from IPython.core.interactiveshell import InteractiveShell

#: (cell, seconds to wait before the next one, or a condition to wait for)
SESSION: list[tuple[str, float | str]] = [
    ("import galapagos_nao as gn", 0),
    ("run = gn.example.short_example()", 4),
    ("run", "run.join()"),
    ("run", 0),
    ("gn.Selection.get_all()", 0),
    ("run = gn.example.infinite_example()", "run.status().generation >= 1"),
    ("net = gn.Selection.get_all()[max(gn.Selection.get_all())]", 0),
    ("gn.Library.put(net)", 0),
    ("gn.Library.get(net.id)", 0),
    ('gn.Parameters.put(gn.Selection, {"complexity_levels": 4})', 0),
    ("gn.Selection.put_unevaluated(gn.Library.get(net.id))", "run.status().generation >= 3"),
    ("gn.Selection.get_all()", 0),
    ("net.model()", 0),
    ("run.stop(); run.join()", 0),
    ("run", 0),
]


def wait(shell: InteractiveShell, pause: float | str) -> None:
    """Sleeps, or polls a condition evaluated in the session's namespace."""
    if isinstance(pause, str):
        while not eval(pause, shell.user_ns):  # noqa: S307 - our own fixed strings
            time.sleep(0.2)
    else:
        time.sleep(pause)


def main() -> None:
    """Types each cell, shows its output, waits as a user would."""
    shell = InteractiveShell.instance(colors="nocolor")
    for cell, pause in SESSION:
        print(f"\nIn [{shell.execution_count}]: {cell}", flush=True)
        shell.run_cell(cell, store_history=True)
        sys.stdout.flush()
        wait(shell, pause)


if __name__ == "__main__":
    main()
