"""The package's imports point one way: down the layers, and down the order inside each.

Every import counts: module-level, inside functions and under ``TYPE_CHECKING``.
A new module must be placed in :data:`ORDER` before it can import anything.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

PACKAGE = "galapagos_nao"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE

#: Every module below the top, lowest first; a module may import only those
#: before it. A sub-package's ``__init__`` (the layer's map) comes after its
#: modules, and each layer after the one it builds on.
ORDER: tuple[str, ...] = (
    # core: pure records and functions
    "core.typing",
    "core.checks",
    "core.ids",
    "core.extras",
    "core.bindings",
    "core.listeners",
    "core.clock",
    "core.transform",
    "core.layer_spec",
    "core.builtin_layers",
    "core.seeded_dropout",
    "core.genome",
    "core.inheritance",
    "core.network",
    "core.group_leaves",
    "core.compiled_shapes",
    "core.record_checks",
    "core.evolution",
    "core.crossover",
    "core.measures",
    "core.datasets.task",
    "core.datasets.mnist_data",
    "core.datasets.streams",
    "core.datasets",
    "core.fingerprint",
    "core.device_data",
    "core.counter_rng",
    "core.fit_records",
    "core.group_plan",
    "core.group_forming",
    "core.budget",
    "core.stacked_ops",
    "core.stacked_dropout",
    "core.stacked_conv",
    "core.stacked",
    "core.graph_step",
    "core.grouped",
    "core.training",
    "core.continual",
    "core",
    # config: the settings
    "config.setting_checks",
    "config.settings",
    "config.parameters",
    "config",
    # archive: the archive and what it remembers
    "archive.axes",
    "archive.history",
    "archive.curation_state",
    "archive.curation",
    "archive.recording",
    "archive.selection_records",
    "archive.selection",
    "archive.lineage",
    "archive",
    # store: files, the workspace, the Library
    "store.layout",
    "store.codec",
    "store.persistence",
    "store.old_files",
    "store.workspace.errors",
    "store.workspace.names",
    "store.workspace.lock",
    "store.workspace.files",
    "store.workspace.row_digest",
    "store.workspace.schema",
    "store.workspace.connection",
    "store.workspace.run_rows",
    "store.workspace.runs",
    "store.workspace.journal_table",
    "store.workspace.summary",
    "store.workspace.experiments",
    "store.workspace.store",
    "store.workspace.current_workspace",
    "store.workspace",
    "store.library",
    "store.journal",
    "store.watch_snapshot",
    "store.watch_reader",
    "store",
    # run: evaluators, the loop, its hooks and API
    "run.records",
    "run.devices",
    "run.limits",
    "run.workers",
    "run.train",
    "run.log_relay",
    "run.grouped",
    "run.local",
    "run.process_wire",
    "run.process_worker",
    "run.process_pool",
    "run.processes",
    "run.ray.worker",
    "run.ray.connection",
    "run.ray.group_tasks",
    "run.ray.driver",
    "run.ray",
    "run.generation",
    "run.failures",
    "run.stream",
    "run.reports",
    "run.waiting",
    "run.loop",
    "run.checkpoint",
    "run.hooks",
    "run.arguments",
    "run.ancestry",
    "run.tracking",
    "run.experiment_task",
    "run.experiments",
    "run.launch",
    "run.api",
    "run.replay_steps",
    "run.replay",
    "run.script",
    "run.session_journal",
    "run",
    # ui: what the user sees
    "ui.logs",
    "ui.layer_table",
    "ui.display",
    "ui.tables",
    "ui.plot_marks",
    "ui.plot",
    "ui.plot_tasks",
    "ui.progress",
    "ui.live_state",
    "ui.live_follow",
    "ui.live_widget",
    "ui.live",
    "ui.watch",
    "ui",
)

#: Files at the top, beside the package root: they may import anything. The four
#: old flat names that are files bind the shared session (see ``__init__``).
TOP = ("__init__", "__main__", "example", "orchestration", "continual", "plot", "lineage")


def module_name(path: Path, root: Path) -> str:
    """``core.genome`` for ``<root>/core/genome.py``; ``run.ray`` for its ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, known: set[str]) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every import of this package anywhere in ``tree``.

    ``from galapagos_nao.x import y`` names the module ``x.y`` when that is a
    module, else ``x``; ``from galapagos_nao import Selection`` names the root ("").
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    yield node.lineno, alias.name.removeprefix(PACKAGE).lstrip(".")
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            if node.module != PACKAGE and not node.module.startswith(PACKAGE + "."):
                continue
            base = node.module.removeprefix(PACKAGE).lstrip(".")
            for alias in node.names:
                candidate = f"{base}.{alias.name}" if base else alias.name
                yield node.lineno, candidate if candidate in known else base
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            yield node.lineno, "<relative import>"


def layer_violations(
    root: Path, order: Sequence[str] = ORDER, top: Sequence[str] = TOP
) -> list[str]:
    """One line per import that points up (or sideways against ``order``), naming file and line."""
    rank = {name: index for index, name in enumerate(order)}
    files = sorted(root.rglob("*.py"))
    known = {module_name(path, root) for path in files}
    problems = []
    for path in files:
        name = module_name(path, root)
        if name in top:
            continue
        where = path.relative_to(root.parent)
        if name not in rank:
            problems.append(f"{where}: module {name!r} is in no layer; place it in ORDER")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in sorted(set(imported_modules(tree, known))):
            if target == name:
                continue
            if rank.get(target, len(order)) >= rank[name]:
                shown = target or f"{PACKAGE} (the package root)"
                problems.append(f"{where}:{line}: {name} imports {shown}, which is not below it")
    return problems


def test_every_import_in_the_package_points_down_the_layers():
    assert layer_violations(PACKAGE_DIR) == []


def test_every_module_is_placed_in_the_order_or_at_the_top():
    names = {module_name(path, PACKAGE_DIR) for path in PACKAGE_DIR.rglob("*.py")}
    assert names - set(TOP) == set(ORDER)


@pytest.mark.parametrize(
    "source",
    [
        "from galapagos_nao.ui import display\n",  # module level, up
        "def f():\n    from galapagos_nao.run.loop import Run\n",  # inside a function
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import galapagos_nao.store\n",
        "import galapagos_nao\n",  # the package root, for its shared instances
        "from galapagos_nao import Selection\n",
        "from galapagos_nao.core import training\n",  # a later sibling in the same layer
        "from .genome import validate\n",
    ],
)
def test_an_upward_import_is_reported_with_its_file_and_line(tmp_path, source):
    root = tmp_path / PACKAGE
    for name in ORDER:
        path = root.joinpath(*name.split("."))
        is_package = any(other.startswith(name + ".") for other in ORDER)
        target = path / "__init__.py" if is_package else path.with_suffix(".py")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
    (root / "__init__.py").touch()
    (root / "core" / "network.py").write_text("import torch\n\n" + source)
    [problem] = layer_violations(root)
    assert problem.startswith(
        f"{PACKAGE}/core/network.py:{source.count(chr(10)) + 2}: core.network"
    )
