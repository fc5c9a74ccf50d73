"""How a command ends when the ground moves under it: SIGTERM between a sweep's jobs or a
search's trials, a launch or sweep folder that cannot be written, a model that does not
fit in memory. Each ends in one line and its exit code (docs/faults.md), with no run,
and no sweep's parent run, left RUNNING."""

from __future__ import annotations

import os
import signal

import pytest
from helpers.compose import FAST
from helpers.mounts import remount, tmpfs
from helpers.sweeps import OPTUNA, search_params
from helpers.workspace import Workspace

from experiments.runs import execute
from experiments.training.memory import OutOfMemory, check_weights_fit, out_of_memory_in_one_line


@pytest.fixture
def sigterm_after_first_job(monkeypatch):
    """SIGTERM to this process as soon as the first job's run has returned, before the
    next one starts; whatever the command does not handle is counted, not fatal."""
    unhandled = []
    previous = signal.signal(signal.SIGTERM, lambda *_: unhandled.append(1))
    real_run = execute.run

    def run_then_terminate(*args, **kwargs):
        result = real_run(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(execute, "run", run_then_terminate)
    yield unhandled
    signal.signal(signal.SIGTERM, previous)


def assert_ended_by_sigterm(workspace, code, err, unhandled, jobs_done):
    assert not unhandled, "SIGTERM reached no handler of the command"
    assert code == 130
    (parent,) = [r for r in workspace.runs() if r.data.tags.get("sweep") == "true"]
    lines = err.strip().splitlines()
    assert lines[-1] == f"error: interrupted (SIGTERM); sweep run {parent.info.run_id} ended KILLED"
    assert parent.info.status == "KILLED"
    assert parent.data.tags["failure_reason"] == "interrupted (SIGTERM)"
    children = [r for r in workspace.runs() if r.info.run_id != parent.info.run_id]
    assert [r.info.status for r in children] == ["FINISHED"] * jobs_done


def test_sigterm_between_the_jobs_of_a_sweep_ends_it_killed(
    workspace, sigterm_after_first_job, capsys
):
    """Before: exit 143 with no message, the parent left RUNNING."""
    code = workspace.train("-m", *FAST, "training.epochs=1", "activation=relu,elu")
    err = capsys.readouterr().err
    assert_ended_by_sigterm(workspace, code, err, sigterm_after_first_job, jobs_done=1)


def test_sigterm_between_the_trials_of_a_search_ends_it_killed(
    workspace, sigterm_after_first_job, capsys
):
    code = workspace.train(
        *OPTUNA, "hydra/sweeper/sampler=random", "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.storage=sqlite:///{workspace.folder}/optuna.db",
        search_params(**{"training.seed": "choice(1,2,3)"}), *FAST, "training.epochs=1",
    )  # fmt: skip
    err = capsys.readouterr().err
    assert_ended_by_sigterm(workspace, code, err, sigterm_after_first_job, jobs_done=1)


def test_a_read_only_launch_folder_is_one_line(tmp_path, capsys):
    """Before: a traceback ending in `OSError: [Errno 30] Read-only file system`."""
    with tmpfs(tmp_path / "ro") as folder:
        workspace = Workspace(folder)
        remount(folder, "ro")
        code = workspace.train(*FAST)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith(f"error: {folder}/outputs")
    assert "cannot be written (Read-only file system)" in err[-1] and "hydra.run.dir" in err[-1]


def test_a_read_only_sweep_folder_is_one_line_and_fails_the_parent_with_it(
    workspace, tmp_path, capsys
):
    """Before: a traceback, and the parent FAILED with no reason."""
    with tmpfs(tmp_path / "ro") as folder:
        remount(folder, "ro")
        code = workspace.train("-m", *FAST, "activation=relu,elu", f"hydra.sweep.dir={folder}/sw")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert "Traceback" not in "\n".join(err)
    (parent,) = workspace.runs()
    reason = f"{folder}/sw cannot be written (Read-only file system)"
    assert err[-1].startswith(f"error: {reason}")
    assert err[-1].endswith(f"; sweep run {parent.info.run_id} ended FAILED")
    assert parent.info.status == "FAILED"
    assert parent.data.tags["failure_reason"].startswith(reason)


def test_a_model_too_large_for_memory_is_one_line_and_a_failed_run(workspace, capsys):
    """Before: TensorFlow's ResourceExhaustedError as a traceback of about 60 lines, after
    10 s of TensorFlow retrying the allocation."""
    code = workspace.train(*FAST, "model.hidden=[1000000,1000000]")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert "Traceback" not in "\n".join(err)
    # 784 x 1e6 + 1e6 x 1e6 + 1e6 x 10 kernels, and their biases
    expected = "out of memory: the net's 1,000,796,000,010 weights need 4,003.2 GB as float32"
    assert err[-1].startswith(f"error: {expected}") and "model.hidden" in err[-1]
    (run,) = workspace.runs()
    assert run.info.status == "FAILED"
    assert run.data.tags["failure_reason"].startswith(expected)


def test_the_weights_bound_refuses_only_what_cannot_fit():
    # The notebook's net: 266,610 weights, about 1 MB.
    check_weights_fit([300, 100], (28, 28), 10, available=1_066_440)
    with pytest.raises(OutOfMemory, match="266,610 weights need 0.0 GB"):
        check_weights_fit([300, 100], (28, 28), 10, available=1_066_439)


def test_what_tensorflow_cannot_allocate_is_one_line():
    """A net whose weights fit but whose training does not: TensorFlow's own refusal,
    as it words it (seen with model.hidden=[100000,100000] on a 24 GB machine)."""
    tf = pytest.importorskip("tensorflow")
    refused = tf.errors.ResourceExhaustedError(
        None, None,
        "{{function_node __wrapped__StatelessTruncatedNormalV2_device_/job:localhost/"
        "replica:0/task:0/device:CPU:0}} OOM when allocating tensor with shape[100000,100000]"
        " and type float on /job:localhost/replica:0/task:0/device:CPU:0 by allocator "
        "mklcpu [Op:StatelessTruncatedNormalV2]",
    )  # fmt: skip
    with pytest.raises(OutOfMemory) as said, out_of_memory_in_one_line():
        raise refused
    assert str(said.value) == (
        "out of memory (OOM when allocating tensor with shape[100000,100000] and type float):"
        " the model does not fit in this machine's memory: use smaller layers (model.hidden,"
        " model.repeat_width) or a smaller training.batch_size"
    )


def test_a_sweep_checks_what_its_jobs_share_before_its_parent_run(workspace, capsys):
    """Before: the store refused the 501-character experiment name (exit 1), after the
    first job had started TensorFlow."""
    name = "x" * 501
    code = workspace.train("-m", *FAST, "activation=relu,elu", f"tracking.experiment={name}")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: tracking.experiment=") and "at most 500 characters" in err[-1]
    assert [e.name for e in workspace.client().search_experiments()] == ["Default"]
