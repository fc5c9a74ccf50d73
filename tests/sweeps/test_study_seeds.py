"""`make study SEEDS=N`: every preset over N seeds in one sweep; one seed by default."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from experiments.paths import CHECKOUT_DIR

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


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


@pytest.mark.parametrize("args, seeds", [((), None), (("SEEDS=5",), [42, 43, 44, 45, 46]),
                                         (("STUDY_SEEDS=3",), [42, 43, 44])])  # fmt: skip
def test_seeds_add_one_sweep_axis_from_the_default_seed(args, seeds):
    done = make_study(*args)
    assert done.returncode == 0, done.stderr
    assert "experiments.train -m experiment=" in done.stdout
    assert seed_override(done.stdout) == seeds


@pytest.mark.parametrize("value", ["0", "x", "-2"])
def test_a_bad_number_of_seeds_is_one_line_before_anything_runs(value):
    done = make_study(f"SEEDS={value}", dry=False)
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == (
        f"error: STUDY_SEEDS={value}: a number of seeds, 1 or more, is allowed"
    )
