"""`gradlab-study --seeds N` (`make study SEEDS=N`): every preset over N seeds in one
sweep; one seed by default."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from experiments.paths import CHECKOUT_DIR
from experiments.sweeps import study

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make_study(*args: str, dry: bool = True) -> subprocess.CompletedProcess:
    """`make study ARGS`, printed only unless `dry` is false; never (re)installs .venv."""
    return subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", *(["-n"] if dry else []), "study", *args],
        cwd=CHECKOUT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def seed_override(output: str) -> list[int] | None:
    """The seeds the study's command line sweeps, as Hydra reads its override."""
    found = [w.strip("'") for w in output.split() if w.strip("'").startswith("training.seed=")]
    if not found:
        return None
    (override,) = OverridesParser.create().parse_overrides(found)
    return list(override.sweep_iterator())


@pytest.mark.parametrize("args, seeds", [((), None), (("--seeds", "5"), [42, 43, 44, 45, 46]),
                                         (("--seeds", "3"), [42, 43, 44])])  # fmt: skip
def test_seeds_add_one_sweep_axis_from_the_default_seed(args, seeds, capsys):
    study.main([*args, "--dry-run"])
    line = capsys.readouterr().out
    assert line.startswith("gradlab-train -m experiment=" + ",".join(study.STUDY_PRESETS))
    assert seed_override(line) == seeds


@needs_make
@pytest.mark.parametrize("args, options", [(("SEEDS=5",), "--seeds 5"),
                                           (("STUDY_SEEDS=3", "STUDY_EPOCHS=2"), "--seeds 3 --epochs 2")])  # fmt: skip
def test_make_study_passes_its_variables_to_the_study_command(args, options):
    done = make_study(*args)
    assert done.returncode == 0, done.stderr
    assert f"-m experiments.sweeps.study {options}" in " ".join(
        done.stdout.replace("\\\n", " ").split()
    )


@needs_make
@pytest.mark.parametrize("value", ["0", "x", "-2"])
def test_a_bad_number_of_seeds_is_one_line_before_anything_runs(value):
    done = make_study(f"SEEDS={value}", dry=False)
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == (
        f"error: STUDY_SEEDS={value}: a number of seeds, 1 or more, is allowed"
    )
