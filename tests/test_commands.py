"""The installed commands: what the installed distribution puts on the PATH is what
`python -m experiments` lists, each one answers --help, and the training command completes a group's options as
Hydra's shell completion asks for them."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys

import pytest

from experiments import __main__ as commands
from experiments.processes import child_environment
from experiments.training.settings import TrainingConfig


def declared() -> dict[str, str]:
    """The console scripts of the installed gradient-lab (pyproject's [project.scripts])."""
    found = importlib.metadata.distribution("gradient-lab").entry_points
    return {e.name: e.value for e in found if e.group == "console_scripts"}


def test_python_m_experiments_lists_every_declared_command(capsys):
    assert commands.main() == 0
    listed = capsys.readouterr().out
    scripts = declared()
    assert sorted(name for name, _, _ in commands.COMMANDS) == sorted(scripts)
    for name, module, _ in commands.COMMANDS:
        assert f"{name} " in listed and f"python -m {module}" in listed
        # The script's target and `python -m <module>` are the same program.
        target_module, function = scripts[name].split(":")
        assert target_module in (module, f"{module}.__main__")
        assert callable(getattr(importlib.import_module(target_module), function))


@pytest.mark.parametrize(
    "module", ["experiments.sweeps.study", "experiments.sync", "experiments.report"]
)
def test_commands_answer_help(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], env=child_environment(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: gradlab-")


def test_tab_completion_lists_a_groups_options(tmp_path):
    """What bash asks after `eval "$(gradlab-train -sc install=bash)"` and a tab."""
    line = "gradlab-train activation="
    done = subprocess.run(
        [sys.executable, "-m", "experiments.train", "-sc", "query=bash"],
        cwd=tmp_path,
        env=child_environment(COMP_LINE=line, COMP_POINT=str(len(line))),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    options = done.stdout.split()
    assert {"activation=relu", "activation=prelu", "activation=selu"} <= set(options)
    assert all(o.startswith("activation=") for o in options)


@pytest.mark.parametrize("verbose, terminal, keras", [(None, True, 1), (None, False, 2),
                                                      (0, True, 0), (2, True, 2)])  # fmt: skip
def test_keras_shows_its_bar_on_a_terminal_and_a_line_per_epoch_in_a_log(verbose, terminal, keras):
    assert TrainingConfig(verbose=verbose).verbose_on(terminal) == keras
