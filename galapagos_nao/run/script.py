"""A journal as a runnable Python script: ``gn.journal.to_script(path)``.

The script lists every recorded step as one call, ``script.step(seq, "3 breeding",
"Selection.pin", cell=2)``: the step's number, the boundary where it took effect
(generation and phase), the action and its arguments as Python literals. Run
with ``python session.py``, it makes fresh objects, replays the steps with a
:class:`~galapagos_nao.run.replay.Replayer`, prints each cell's elite with its
fingerprint and exits 0 when every step was exact. ``--save DIRECTORY`` also
exports the elites as network files.
"""

from __future__ import annotations

import os
import pprint
import time
from collections.abc import Iterable, Sequence
from keyword import iskeyword
from pathlib import Path
from typing import Any

from galapagos_nao.core.checks import describe
from galapagos_nao.core.clock import Stamp
from galapagos_nao.core.datasets import Task
from galapagos_nao.run.replay import Replayer, ReplayResult
from galapagos_nao.run.replay_steps import STARTS
from galapagos_nao.store.journal import JournalEntry
from galapagos_nao.store.persistence import export_networks

__all__ = ["Script", "write_script"]


class Script:
    """The steps of a written-out session; what a script from ``to_script`` builds and runs.

    Args:
        task: The task the recorded runs used (None: full MNIST).
        tasks: The task stream of a recorded continual run, if it had one.
    """

    def __init__(self, *, task: Task | None = None, tasks: Sequence[Task] | None = None) -> None:
        self.task = task
        self.tasks = tasks
        self.entries: list[JournalEntry] = []
        self._process = 1

    def restart(self) -> None:
        """Marks a new process: later steps start from fresh objects, as the recorded ones did."""
        self._process += 1

    def step(self, seq: int, at: str, action: str, **arguments: Any) -> None:
        """Adds step ``seq``: ``action`` with ``arguments``, at boundary ``at`` ("3 breeding")."""
        generation, _, phase = at.partition(" ")
        stamp = Stamp(int(generation), phase) if phase else None
        self.entries.append(
            JournalEntry(
                seq=seq,
                time=0.0,
                generation=int(generation),
                action=action,
                arguments=arguments,
                phase=None if stamp is None else stamp.phase,
                session=f"process-{self._process}",
            )
        )

    def run(self) -> ReplayResult:
        """Replays the steps on fresh objects."""
        return Replayer(self.entries, task=self.task, tasks=self.tasks).run()

    def main(self, argv: Sequence[str]) -> int:
        """Replays, prints the archive and any divergence; ``--save DIR`` exports the elites."""
        result = self.run()
        print(repr(result))
        for line in result.archive_lines():
            print(line)
        for divergence in result.divergences:
            print(f"diverged: {divergence}")
        for note in result.notes:
            print(f"note: {note}")
        if len(argv) == 2 and argv[0] == "--save":
            for path in export_networks(result.selection.elites().values(), argv[1]):
                print(f"saved {path}")
        return 0 if result.exact else 1


def write_script(
    path: str | os.PathLike[str],
    entries: Iterable[JournalEntry],
    *,
    task: str | None = None,
    tasks: str | None = None,
) -> Path:
    """Writes ``entries`` as a runnable script (see the module's docstring).

    Args:
        path: Where to write it (``.py``).
        entries: The recorded steps, oldest first.
        task: A Python expression, evaluated in the script with ``gn`` imported,
            that builds the task the recorded runs used; required unless they
            used the default (full MNIST).
        tasks: Likewise for the task stream of a recorded continual run.

    Raises:
        ValueError: if the runs used a task (or stream) and no expression builds
            it, or an argument is not what it must be (nothing is written then).
    """
    for name, expression in (("task", task), ("tasks", tasks)):
        if expression is not None and not isinstance(expression, str):
            raise ValueError(
                f"{name} must be a Python expression (a str) that builds it, "
                f"got {describe(expression)}"
            )
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file path, got {describe(path)}")
    entries = list(entries)
    _check_task_expressions(entries, task, tasks)
    out = Path(path)
    lines = [
        "#!/usr/bin/env python3",
        f'"""A steered Galápagos Nǎo session: {len(entries)} recorded steps, replayed.',
        "",
        f"Written by gn.journal.to_script on {time.strftime('%Y-%m-%d %H:%M')}. It makes fresh",
        "objects and applies each step at the generation and phase where it took",
        "effect, with the seeds the runs used, so on CPU it ends with the same archive",
        "(genomes, metrics and weights). It prints each cell's elite with its",
        "fingerprint and any step that could not be exact, and exits 0 when none.",
        f"Usage: python {out.name} [--save DIRECTORY]",
        '"""',
        "",
        "import sys",
        "",
        "import galapagos_nao as gn",
        "from galapagos_nao.run.script import Script",
        "",
        f"TASK = {task or 'None'}",
        f"TASKS = {tasks or 'None'}",
        "",
        "script = Script(task=TASK, tasks=TASKS)",
        *_step_lines(entries),
        "",
        'if __name__ == "__main__":',
        "    sys.exit(script.main(sys.argv[1:]))",
        "",
    ]
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


def _check_task_expressions(
    entries: list[JournalEntry], task: str | None, tasks: str | None
) -> None:
    for entry in entries:
        if entry.action not in STARTS:
            continue
        recorded_task = entry.arguments.get("task")
        if recorded_task is not None and task is None:
            raise ValueError(
                f"step {entry.seq} ({entry.action}) ran on {recorded_task}: pass task= a Python "
                "expression that builds it, e.g. task=\"gn.datasets.mnist('data')\""
            )
        if entry.arguments.get("tasks") and tasks is None:
            raise ValueError(
                f"step {entry.seq} ({entry.action}) moved through tasks: pass tasks= a Python "
                'expression that builds them, e.g. tasks="gn.datasets.split_mnist()"'
            )


def _step_lines(entries: list[JournalEntry]) -> list[str]:
    lines: list[str] = []
    process = None
    for entry in entries:
        if process is not None and entry.session not in (None, process):
            lines.append("script.restart()  # the recorded session went on in a new process")
        process = entry.session or process
        at = str(entry.stamp) if entry.stamp is not None else str(entry.generation)
        head = f"script.step({entry.seq}, {at!r}, {entry.action!r}"
        plain = {k: v for k, v in entry.arguments.items() if k.isidentifier() and not iskeyword(k)}
        odd = {k: v for k, v in entry.arguments.items() if k not in plain}
        arguments = [f"{key}={_literal(value)}" for key, value in plain.items()]
        arguments += [f"**{_literal(odd)}"] if odd else []
        one_line = ", ".join([head, *arguments]) + ")"
        if len(one_line) <= 100 and "\n" not in one_line:
            lines.append(one_line)
            continue
        lines.append(head + ",")
        for argument in arguments:
            lines.append("    " + argument.replace("\n", "\n    ") + ",")
        lines.append(")")
    return lines


def _literal(value: Any) -> str:
    # The arguments are JSON values: their reprs are Python literals.
    return pprint.pformat(value, width=92, sort_dicts=False)
