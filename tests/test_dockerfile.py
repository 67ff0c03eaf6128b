"""The Dockerfile does what the docs say (no container engine runs here: it is read).

It installs the CPU build of torch by default, the extras the session uses, its
dependencies before the source is copied, and keeps the workspace (``GN_HOME``)
on a volume. Its dependency-list command is run here on ``pyproject.toml``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

from galapagos_nao.store.workspace.current_workspace import HOME_ENV, default_folder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: The extras the README's session and the docs' pages use inside the container.
SESSION_EXTRAS = {"ipython", "plot"}


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    kept = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(kept))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def arg_default(name: str) -> str:
    for keyword, rest in instructions():
        if keyword == "ARG" and rest.startswith(f"{name}="):
            return rest.split("=", 1)[1]
    raise AssertionError(f"the Dockerfile has no ARG {name}=default")


def env_values() -> dict[str, str]:
    values = {}
    for keyword, rest in instructions():
        if keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                values[key] = value
    return values


def index_of(predicate) -> int:
    for index, instruction in enumerate(instructions()):
        if predicate(*instruction):
            return index
    raise AssertionError("no such instruction")


def test_torch_comes_from_the_cpu_index_by_default():
    assert arg_default("TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu"
    torch_install = index_of(lambda k, r: k == "RUN" and '--index-url "$TORCH_INDEX_URL"' in r)
    run = instructions()[torch_install][1]
    assert "torch|torchvision" in run  # both packages, with pyproject's version ranges


def test_dependencies_are_installed_before_the_source_is_copied():
    copy_pyproject = index_of(lambda k, r: k == "COPY" and r.split()[0] == "pyproject.toml")
    install_deps = index_of(lambda k, r: k == "RUN" and "pip install -r requirements.txt" in r)
    copy_source = index_of(lambda k, r: k == "COPY" and r.split()[0] == ".")
    install_package = index_of(lambda k, r: k == "RUN" and "pip install --no-deps ." in r)
    assert copy_pyproject < install_deps < copy_source < install_package
    copies = [rest for keyword, rest in instructions()[:install_deps] if keyword == "COPY"]
    assert copies == ["pyproject.toml ./"], "only pyproject.toml may reach the dependency layer"


def test_the_extras_the_session_uses_exist_and_are_installed():
    extras = set(arg_default("EXTRAS").split(","))
    assert extras >= SESSION_EXTRAS
    with (ROOT / "pyproject.toml").open("rb") as handle:
        defined = set(tomllib.load(handle)["project"]["optional-dependencies"])
    assert extras <= defined, f"unknown extras: {sorted(extras - defined)}"


def test_the_dependency_list_command_lists_pyprojects_requirements(tmp_path: Path):
    run = next(r for k, r in instructions() if k == "RUN" and "requirements.txt" in r)
    command = run.split(" > requirements.txt", 1)[0]
    assert command.startswith("python -c ")
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    argv = [sys.executable if word == "python" else word for word in shlex.split(command)]
    argv = [arg_default("EXTRAS") if word == "$EXTRAS" else word for word in argv]
    listed = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=True)
    requirements = listed.stdout.split()
    with (ROOT / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    expected = list(project["dependencies"])
    for extra in arg_default("EXTRAS").split(","):
        expected += project["optional-dependencies"][extra]
    assert requirements == expected
    # The torch install step picks exactly torch and torchvision out of that list.
    picked = subprocess.run(
        ["grep", "-E", "^(torch|torchvision)[^a-z_-]", "-"],
        input=listed.stdout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(name.split(">")[0] for name in picked) == ["torch", "torchvision"]


def test_the_workspace_lives_on_a_volume_in_gn_home(monkeypatch: pytest.MonkeyPatch):
    home = env_values()[HOME_ENV]
    volumes = [rest for keyword, rest in instructions() if keyword == "VOLUME"]
    assert home in " ".join(volumes).replace('"', "").split()
    # The library keeps its workspace file in that folder.
    monkeypatch.setenv(HOME_ENV, home)
    assert default_folder() == Path(home)
    # The download cache is on the volume too, and the user the shell runs as owns it.
    assert env_values()["XDG_CACHE_HOME"].startswith(home + "/")
    user = next(rest for keyword, rest in instructions() if keyword == "USER")
    assert any(f"chown {user} {home}" in r for k, r in instructions() if k == "RUN")


def test_the_shell_imports_gn_and_runs_outside_the_source_tree():
    keyword, cmd = instructions()[-1]
    assert keyword == "CMD" and "import galapagos_nao as gn" in cmd
    workdirs = [rest for keyword, rest in instructions() if keyword == "WORKDIR"]
    assert workdirs[-1] != workdirs[0]  # the package, not /opt/galapagos-nao, is imported


def test_the_build_context_leaves_out_the_virtualenv_and_git():
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".git", "site"} <= set(ignored)


def test_the_docs_show_how_to_build_run_mount_mnist_and_build_for_cuda():
    page = (ROOT / "docs" / "guide" / "container.md").read_text(encoding="utf-8")
    assert "docker build -t galapagos-nao ." in page
    assert "-v gn-home:/gn-home" in page and "GN_DATA_DIR=/data" in page
    assert "--build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu" in page
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docker build -t galapagos-nao ." in readme
