"""The docs stay true: their Python examples run, and their parameters table is the code's.

Every ```python block of the README and of every page under ``docs/`` is executed, page by page,
in a fresh interpreter (blocks of one page share it, as cells of a notebook
do), with ``GN_DATA_DIR`` pointing at a small MNIST written in torchvision's
layout from the subset bundled in the package (3,000 training and 1,000 test
images of the real MNIST): ``gn.datasets.mnist()`` and the default task read it
as they read a user's copy, and the download is refused. Outputs quoted in the
pages come from real runs on full MNIST; what is checked is that the code runs. A block preceded by
``<!-- docs-test: needs MODULE -->`` runs only where MODULE imports (an extra).
Transcripts and outputs go in ```text blocks, which are not run.

Pages run two at a time: a page's fresh interpreter spends seconds importing
torch on one core, and the machine that runs the suite has two. A page that
starts a local Ray runs alone, after the others: Ray's own processes take both
cores, and beside another page its start took over a minute.

``mkdocs build --strict`` itself runs in ``make docs`` (and so in ``make test``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from galapagos_nao.core import datasets

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
#: An output line that names an exception: the statement before it must raise it.
ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Locked|Corrupt)):")
NEEDS = re.compile(r"<!--\s*docs-test:\s*needs\s+([\w.]+)\s*-->\s*$")
#: Run before a page's blocks: no download, figures drawn off screen.
PROLOGUE = """
import matplotlib
matplotlib.use("Agg")
import torchvision.datasets

def _refuse_download(self):
    raise RuntimeError("docs examples never reach the network")

torchvision.datasets.MNIST.download = _refuse_download

def _expect_error(name, source, namespace):
    try:
        exec(compile(source, "<docs example>", "exec"), namespace)
    except BaseException as error:
        if name not in {cls.__name__ for cls in type(error).__mro__}:
            raise
        return
    raise AssertionError(f"the docs show {name} from {source!r}, but nothing was raised")
"""
#: Run after them: a continual run a page left going is stopped before the interpreter exits.
EPILOGUE = """
import galapagos_nao as _gn
_run = _gn.Selection.run
if _run is not None:
    _run.stop()
    _run.join(120)
"""
PATIENCE = 600
#: Pages whose interpreters run at once (see the module docstring).
PAGES_AT_ONCE = 2
#: Training and test images of the small MNIST the pages run on.
SMALL_MNIST = (3000, 1000)


@dataclass(frozen=True)
class Block:
    """One fenced Python block: the line its code starts on, its code, the module it needs."""

    line: int
    code: str
    needs: str | None


def python_blocks(page: Path) -> list[Block]:
    """The page's ```python blocks, in order; ``>>>`` prompts are stripped to their code."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        if match.group(1) not in ("python", "py"):
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        needs = NEEDS.search(before)
        line = text.count("\n", 0, match.start(2)) + 1
        blocks.append(Block(line, _code(match.group(2)), needs.group(1) if needs else None))
    return blocks


def _code(body: str) -> str:
    """The code of a block: as it is, or the statements of a doctest-style one.

    In a ``>>>`` block, output lines become blank lines (so tracebacks keep the
    page's line numbers) and are not compared, except that a statement whose
    output names an exception (``ShapeError: ...``) must raise one of that name.
    """
    lines = body.splitlines()
    if not any(line.startswith(">>>") for line in lines):
        return body
    code = [""] * len(lines)
    index = 0
    while index < len(lines):
        if not lines[index].startswith(">>>"):
            index += 1
            continue
        start, statement = index, [lines[index][4:]]
        index += 1
        while index < len(lines) and lines[index].startswith("..."):
            statement.append(lines[index][4:])
            index += 1
        output = []
        while index < len(lines) and not lines[index].startswith(">>>"):
            output.append(lines[index])
            index += 1
        error = next((m.group(1) for m in map(ERROR_LINE.match, output) if m), None)
        if error is None:
            code[start : start + len(statement)] = statement
        else:
            source = "\n".join(statement)
            code[start] = f"_expect_error({error.rsplit('.', 1)[-1]!r}, {source!r}, globals())"
    return "\n".join(code)


def page_script(page: Path, blocks: list[Block]) -> str:
    """One script running the page's blocks in order, each compiled with its page and line."""
    parts = [PROLOGUE]
    for block in blocks:
        if block.needs and importlib.util.find_spec(block.needs) is None:
            continue
        source = "\n" * (block.line - 1) + block.code
        parts.append(f"exec(compile({source!r}, {str(page)!r}, 'exec'), globals())")
    parts.append(EPILOGUE)
    return "\n".join(parts)


PAGES_WITH_CODE = [page for page in PAGES if python_blocks(page)]


def write_idx(path: Path, array: np.ndarray) -> None:
    """Writes a uint8 array as an IDX file, the format MNIST ships in."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(size).to_bytes(4, "big") for size in array.shape
    )
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


@pytest.fixture(scope="module")
def small_mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset root holding ``MNIST/raw/``: the first images of the bundled subset."""
    root = tmp_path_factory.mktemp("small_mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    bundled = resources.files("galapagos_nao").joinpath("data", "mnist_subset.npz")
    n_train, n_test = SMALL_MNIST
    with bundled.open("rb") as handle, np.load(handle, allow_pickle=False) as arrays:
        write_idx(raw / "train-images-idx3-ubyte", arrays["x_train"][:n_train])
        write_idx(raw / "train-labels-idx1-ubyte", arrays["y_train"][:n_train])
        write_idx(raw / "t10k-images-idx3-ubyte", arrays["x_test"][:n_test])
        write_idx(raw / "t10k-labels-idx1-ubyte", arrays["y_test"][:n_test])
    return root


def test_the_small_mnist_loads_as_a_users_copy_would(small_mnist_root: Path):
    task = datasets.mnist(small_mnist_root, download=False)
    assert (task.n_train, task.n_test) == SMALL_MNIST
    assert task.input_shape == (1, 28, 28) and set(task.y_train.tolist()) == set(range(10))


def test_the_docs_have_python_examples_to_run():
    assert len(PAGES_WITH_CODE) >= 8, [p.name for p in PAGES_WITH_CODE]


def page_environment(folder: Path, mnist_root: Path) -> dict[str, str]:
    """This process's environment for a page run from ``folder`` on the MNIST at ``mnist_root``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    env.update(GN_HOME=str(folder / "gn_home"), GN_DATA_DIR=str(mnist_root))
    env.update(XDG_CACHE_HOME=str(folder / "cache"))
    env.pop("RAY_ADDRESS", None)  # a page that uses Ray starts a local one
    return env


def run_page(page: Path, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Runs the page's blocks in a fresh interpreter, from ``folder``, with ``env``."""
    script = folder / "page.py"
    script.write_text(page_script(page, python_blocks(page)), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )


def starts_ray(page: Path) -> bool:
    """Whether a block of the page chooses the Ray backend (and so starts a local Ray)."""
    return any('"ray"' in block.code for block in python_blocks(page))


def run_page_after(
    before: list[Future[subprocess.CompletedProcess[str]]], *args: Any
) -> subprocess.CompletedProcess[str]:
    """:func:`run_page` once every run of ``before`` has ended."""
    wait(before)
    return run_page(*args)


@pytest.fixture(scope="module")
def page_runs(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    small_mnist_root: Path,
) -> Iterator[dict[Path, Future[subprocess.CompletedProcess[str]]]]:
    """The run of every page this session tests, started at first use, PAGES_AT_ONCE at a time.

    Pages that start a local Ray run one by one once the others have ended.
    """
    pages = [
        item.callspec.params["page"]
        for item in request.session.items
        if getattr(item, "function", None) is test_every_python_example_on_the_page_runs
    ]
    shared = ThreadPoolExecutor(PAGES_AT_ONCE, thread_name_prefix="docs-page")
    alone = ThreadPoolExecutor(1, thread_name_prefix="docs-page-alone")
    try:
        runs = {}
        for page in sorted(pages, key=starts_ray):  # the Ray pages last
            folder = tmp_path_factory.mktemp(page.stem)
            env = page_environment(folder, small_mnist_root)  # read here: tests change os.environ
            if starts_ray(page):
                others = [runs[p] for p in pages if not starts_ray(p)]
                runs[page] = alone.submit(run_page_after, others, page, folder, env)
            else:
                runs[page] = shared.submit(run_page, page, folder, env)
        yield runs
    finally:
        shared.shutdown(cancel_futures=True)
        alone.shutdown(cancel_futures=True)


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_example_on_the_page_runs(
    page: Path, page_runs: dict[Path, Future[subprocess.CompletedProcess[str]]]
) -> None:
    result = page_runs[page].result()
    assert result.returncode == 0, (
        f"a Python example in {page.relative_to(ROOT)} failed (the traceback names its line; "
        f"outputs and transcripts belong in ```text blocks):\n{result.stderr[-6000:]}"
    )


def test_doctest_style_blocks_run_their_prompt_lines_only():
    code = _code(">>> x = 1 + 1\n>>> x\n2\n>>> for i in range(2):\n...     x += i\n")
    assert code.splitlines() == ["x = 1 + 1", "x", "", "for i in range(2):", "    x += i"]


def test_a_doctest_statement_shown_raising_must_raise_that_error():
    code = _code(">>> int('x')\nValueError: invalid literal\n>>> y = 2\n")
    assert code.splitlines()[0].startswith("_expect_error('ValueError', ")
    namespace: dict = {}
    exec(PROLOGUE.split("import matplotlib", 1)[0] + _expect_error_source(), namespace)
    exec(code, namespace)
    assert namespace["y"] == 2
    with pytest.raises(AssertionError, match="nothing was raised"):
        exec(_code(">>> z = 1\nValueError: shown but not raised\n"), namespace)


def _expect_error_source() -> str:
    return "def _expect_error" + PROLOGUE.split("def _expect_error", 1)[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_builds_the_docs_with_warnings_as_errors(tmp_path: Path):
    """``make -n test`` in a fresh copy (no .venv yet) installs the docs extra and builds."""
    for name in ("Makefile", "pyproject.toml"):
        (tmp_path / name).write_text((ROOT / name).read_text(encoding="utf-8"), encoding="utf-8")
    commands = subprocess.run(
        ["make", "-n", "test"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert "pip install --quiet -e '.[docs]'" in commands
    build = commands.index("mkdocs build --strict")
    assert build < commands.index("-m pytest")  # a broken site fails before the suite runs
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "site/" in ignored


def _parameters_table() -> str:
    spec = importlib.util.spec_from_file_location(
        "parameters_table", ROOT / "tools" / "parameters_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parameters_table()


def test_parameters_page_has_the_table_the_settings_define():
    page = (DOCS / "guide" / "parameters.md").read_text(encoding="utf-8")
    assert _parameters_table() in page, (
        "regenerate with: .venv/bin/python tools/parameters_table.py "
        "(paste it below the marker in docs/guide/parameters.md)"
    )
