"""``examples/live.ipynb`` run in JupyterLab in headless Chromium: the live view as people see it.

A real JupyterLab server on the loopback address, Debian's ``chromium``
driven by Playwright (which never downloads a browser here), the notebook run
with "Run All Cells". Two screenshots of the view a few seconds apart must
differ. Where Chromium is not installed the test skips and says why.

``GN_SAVE_SCREENSHOT=path`` keeps the second screenshot there (the README's
picture, ``docs/images/live_view.png``, is made this way).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed (apt-get install -y chromium): "
        "the browser test of the live view needs it",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright (dev extra)")
pytest.importorskip("jupyterlab", reason="the browser test needs JupyterLab (dev extra)")
pytest.importorskip("anywidget", reason="the live view needs the notebook extra (anywidget)")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "live.ipynb"
#: Chromium's flags: headless, no sandbox (root in CI), nothing that reaches out.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Seconds between the two screenshots.
APART = 3.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[str]:
    """A JupyterLab server on 127.0.0.1 serving a copy of the notebook; yields its URL."""
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR"):
        env[name] = str(tmp_path / name.lower())
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp_path / "workspaces")
    # The kernel imports this checkout, whether or not it is installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",  # CI runs as root
        "--ServerApp.terminals_enabled=False",
        "--LabApp.extension_manager=readonly",  # no look-ups on a package index
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, server, tmp_path / "jupyterlab.log")
        yield url
    finally:
        stop_group(server)
        log.close()


def stop_group(server: subprocess.Popen) -> None:
    """Ends the server and the kernels it started (its own process group)."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
    except ProcessLookupError:
        pass  # already gone
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def wait_for_server(url: str, server: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"JupyterLab did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


WAIT_FOR_KERNEL = """async () => {
    const panel = window.jupyterapp.shell.currentWidget;
    await panel.context.ready;
    await panel.sessionContext.ready;
    return panel.sessionContext.session.kernel.status;
}"""
RUNNING_VIEW = """() => {
    const view = document.querySelector('.gn-live');
    return view !== null && view.dataset.state === 'running'
        && Number(view.dataset.generation) >= 1;
}"""


def test_the_live_view_changes_on_screen_while_the_run_trains(jupyterlab, tmp_path):
    started = time.monotonic()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, device_scale_factor=2)
            page.goto(f"{jupyterlab}/lab/tree/{NOTEBOOK.name}")
            page.wait_for_function("() => window.jupyterapp?.shell.currentWidget")
            page.evaluate(WAIT_FOR_KERNEL)
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            page.wait_for_function(RUNNING_VIEW, timeout=180_000)
            view = page.locator(".gn-live").first
            first, first_text = view.screenshot(), view.inner_text()
            time.sleep(APART)
            second, second_text = view.screenshot(), view.inner_text()
            page.wait_for_function(
                "() => document.querySelector('.gn-live').dataset.state === 'finished'",
                timeout=180_000,
            )
            final_text = view.inner_text()
        finally:
            browser.close()
    (tmp_path / "first.png").write_bytes(first)
    (tmp_path / "second.png").write_bytes(second)
    assert first != second and first_text != second_text  # it updated in place
    for text in (first_text, second_text, final_text):
        assert "best val_acc" in text and "mean val_acc" in text and "generations" in text
    assert "finished" in final_text and "6/6" in final_text
    saved = os.environ.get("GN_SAVE_SCREENSHOT")
    if saved:
        Path(saved).write_bytes(second)
    print(f"browser test took {time.monotonic() - started:.1f} s after the server started")
