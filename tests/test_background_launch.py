"""The suite started in the background (``make test &``, ``nohup``) runs as in a terminal.

A shell starts a background command with SIGINT ignored, and Python then installs
no KeyboardInterrupt handler: the Ctrl-C tests would wait forever, and Ray's
workers would inherit the ignore and never be cancelled. ``conftest.py``
restores Python's handler first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_suite_started_with_sigint_ignored_still_gets_ctrl_c():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/run/test_waiting.py::test_ctrl_c_while_waiting_prints_one_line_and_leaves_the_handle_working[False]",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        # what a non-interactive shell does to a background job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
