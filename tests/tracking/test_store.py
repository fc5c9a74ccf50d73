"""Opening a tracking store: several processes creating one SQLite store at once, a
half-migrated store found later, and stores that cannot be used, each answered in one
line (exit 1) with nothing recorded before lost."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from helpers.compose import FAST

from experiments.processes import child_environment
from experiments.tracking.store import TrackingError, open_store

OPEN_STORE = (
    "import sys; from pathlib import Path; "
    "from experiments.tracking.store import open_experiment; "
    "open_experiment(None, 'gradient-lab', Path('.')); print('opened')"
)


def tables(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as con:
        return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]


@pytest.mark.slow
def test_processes_opening_a_new_store_at_once_all_get_it_whole(tmp_path):
    """Four processes start together in an empty folder (as four `python -m
    experiments.train ... &` do): MLflow's migrations would race; under the store lock
    one creates the store and every process uses it."""
    started = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STORE],
            cwd=tmp_path,
            env=child_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=600), *p.communicate()) for p in started]
    for code, out, err in results:
        assert code == 0 and out.strip() == "opened", err[-2000:]
    assert not [t for t in tables(tmp_path / "mlflow.db") if t.startswith("_alembic_tmp_")]
    client = open_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert [e.name for e in client.search_experiments()].count("gradient-lab") == 1


def half_migrate(path: Path) -> None:
    """What a race on a new store leaves: a leftover batch-migration table and the schema
    version of a migration that did not finish."""
    with closing(sqlite3.connect(path)) as con:
        con.execute("CREATE TABLE _alembic_tmp_experiments (experiment_id INTEGER)")
        con.execute("UPDATE alembic_version SET version_num = '7f2a7d5fae7d'")
        con.commit()


@pytest.mark.slow
def test_a_half_migrated_store_without_runs_is_made_anew(workspace, capsys):
    """Before, every later run, the report and MlflowClient failed on such a store."""
    db = workspace.folder / "mlflow.db"
    half_migrate(db)
    assert workspace.train(*FAST, "training.epochs=1") == 0
    (run,) = workspace.runs()
    assert run.info.status == "FINISHED"
    assert "half-migrated and held no runs: made anew" in capsys.readouterr().err
    kept = list(workspace.folder.glob("mlflow.db.half-migrated-*"))
    assert len(kept) == 1 and "_alembic_tmp_experiments" in tables(kept[0])


@pytest.mark.slow
def test_a_half_migrated_store_with_runs_keeps_them(workspace):
    """A store that holds runs is never thrown away: a copy is kept, then MLflow's own
    `mlflow db upgrade` finishes the schema, or the command says in one line what to do.
    The next command runs in a new process, as it would for a user (this one keeps the
    store open)."""
    assert workspace.train(*FAST, "training.epochs=1") == 0
    (before,) = workspace.runs()
    half_migrate(workspace.folder / "mlflow.db")
    done = subprocess.run(
        [sys.executable, "-m", "experiments.report"],
        cwd=workspace.folder,
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    backups = list(workspace.folder.glob("mlflow.db.half-migrated-*"))
    assert len(backups) == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    if done.returncode == 0:  # repaired: the earlier run is in the report
        assert "upgraded" in done.stderr and "report of 1 runs" in done.stdout
    else:  # or one line that says what to do, the store left as it was
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == 1 and last.startswith("error: tracking store ")
        assert str(backups[0]) in last
    with closing(sqlite3.connect(workspace.folder / "mlflow.db")) as con:
        assert con.execute("SELECT run_uuid FROM runs").fetchall() == [(before.info.run_id,)]


def error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    assert not any("Traceback" in line for line in lines)
    return lines[-1]


def test_a_corrupt_store_is_one_line_for_a_run_and_for_the_report(workspace, capsys):
    from experiments.report.__main__ import main as report_main

    db = workspace.folder / "mlflow.db"
    db.write_bytes(b"this is not a database" * 100)
    assert workspace.train(*FAST) == 1
    line = error_line(capsys)
    assert line.startswith(f"error: tracking store {db} is not a readable MLflow SQLite database")
    assert "move it aside" in line
    assert report_main(["--tracking-uri", f"sqlite:///{db}"]) == 1
    assert "is not a readable MLflow SQLite database" in error_line(capsys)
    assert db.read_bytes().startswith(b"this is not a database")  # left as it was


def test_an_unsupported_scheme_is_one_line(workspace, capsys):
    assert workspace.train(*FAST, "tracking.uri=notascheme://x") == 1
    line = error_line(capsys)
    assert line.startswith("error: tracking store notascheme://x: unsupported URI scheme")
    assert "sqlite:///" in line


def test_a_read_only_store_is_one_line(workspace, capsys):
    """A file nobody may write (as root, only an immutable file refuses writes)."""
    assert workspace.train(*FAST, "training.epochs=1") == 0
    db = workspace.folder / "mlflow.db"
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here: no way to make the store read-only")
    try:
        assert workspace.train(*FAST, "training.epochs=1") == 1
        line = error_line(capsys)
        assert line.startswith(f"error: tracking store {db} cannot be written")
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    assert len(workspace.runs()) == 1  # the earlier run is intact


def test_a_reader_never_creates_a_store(tmp_path):
    with pytest.raises(TrackingError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path / 'mlflow.db'}", create=False)
    assert not (tmp_path / "mlflow.db").exists()
