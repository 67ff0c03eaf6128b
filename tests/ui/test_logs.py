"""What a run says at the prompt: three levels, visible warnings, log lines above progress bars."""

from __future__ import annotations

import logging
import re
import subprocess
import sys

import pytest

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets
from galapagos_nao.example import seed_layers
from galapagos_nao.ui.logs import ConsoleHandler


@pytest.fixture
def tiny(small_mnist) -> datasets.Task:
    return datasets.subset(small_mnist, 600, 200, seed=0)


def one_generation(task: datasets.Task, **wait) -> gn.Run:
    parameters = Parameters()
    parameters.put(gn.orchestration, {"generation_size": 2})
    run = gn.evolve(seed_layers(), 1, task, selection=Selection(parameters=parameters))
    assert run.wait(120, **wait)
    return run


@pytest.mark.parametrize(
    ("level", "shown", "hidden"),
    [
        (
            "generation",
            ["Generation 0 (this run 1/1): 2 evaluated, 0 failed"],
            ["Epoch 0", "remaining"],
        ),
        (
            "candidate",
            [
                "Generations remaining: 1",
                "Epoch 0. Loss: ",
                "Generation 0 (this run 1/1): 2 evaluated",
            ],
            [],
        ),
        ("quiet", [], ["Generation", "Epoch"]),
    ],
)
def test_one_call_sets_how_much_a_run_says(tiny, capsys, level, shown, hidden):
    gn.log_level(level)
    one_generation(tiny)
    err = capsys.readouterr().err
    assert all(text in err for text in shown), err
    assert not any(text in err for text in hidden), err
    if level == "candidate":
        assert err.count("Epoch 0. Loss: ") == 2


def test_an_unknown_level_is_refused_by_name():
    with pytest.raises(ValueError, match=r"level must be one of \['generation', 'candidate', "):
        gn.log_level("verbose")


WARN = (
    "import logging, galapagos_nao as gn; {setup}; "
    "logging.getLogger('galapagos_nao.x').warning('look here')"
)


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("pass", "WARNING: look here\n"),  # nobody set logging up: still shown
        ("gn.log_level('generation')", "look here\n"),  # the console handler shows it, once
        ("gn.log_level('quiet')", "WARNING: look here\n"),
        ("logging.basicConfig(format='%(message)s')", "look here\n"),  # the app's own, once
    ],
)
def test_warnings_reach_the_user_once_whatever_the_setup(setup, expected):
    result = subprocess.run(
        [sys.executable, "-c", WARN.format(setup=setup)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stderr == expected


def test_progress_bars_write_log_lines_above_them_and_give_the_handlers_back(tiny, capsys):
    gn.log_level("generation")
    [handler] = [
        h for h in logging.getLogger("galapagos_nao").handlers if type(h) is ConsoleHandler
    ]
    redirected = []
    parameters = Parameters()
    parameters.put(gn.orchestration, {"generation_size": 2})
    run = gn.evolve(
        seed_layers(),
        2,
        tiny,
        selection=Selection(parameters=parameters),
        hooks=[lambda report: redirected.append("emit" in vars(handler))],
    )
    assert run.wait(120, progress=True)
    assert "emit" not in vars(handler)  # the handler writes where it did before
    # Every generation's line was written while bars were up, so through tqdm.write;
    # the second generation surely ran under the bars.
    assert redirected[-1] is True
    err = capsys.readouterr().err
    line = next(
        text for text in err.split("\n") if "Generation 1 (this run 2/2): 2 evaluated" in text
    )
    # What the terminal shows of that line: after the last carriage return, escapes removed.
    shown = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line.split("\r")[-1]).strip()
    assert shown.startswith("Generation 1 (this run 2/2)")  # its own line, not glued to a bar
