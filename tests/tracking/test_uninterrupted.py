"""A store write is never cut in half by Ctrl-C or SIGTERM: the signal waits for its end
(a KeyboardInterrupt inside SQLite's commit left a lock that hung the run's KILLED end)."""

from __future__ import annotations

import os
import signal

import pytest

from experiments.tracking.recorder import RunRecorder
from experiments.tracking.uninterrupted import signals_held


def test_ctrl_c_during_a_write_interrupts_once_the_write_is_done():
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("written")  # still runs: the interrupt is held
    assert steps == ["written"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_held_sigterm_reaches_the_handler_in_place_before():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            assert seen == []
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_recorder_write_interrupted_by_ctrl_c_lands_and_the_run_can_still_end(tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "mlruns"))
    recorder = RunRecorder.start(client, experiment, "run", {})
    original = client.log_batch

    def log_batch_hit_by_ctrl_c(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the write
        return original(*args, **kwargs)

    client.log_batch = log_batch_hit_by_ctrl_c
    with pytest.raises(KeyboardInterrupt):
        recorder.log_metrics({"loss": 0.5}, step=0)
    client.log_batch = original
    recorder.end("KILLED", "interrupted")  # the store is not left locked
    run = client.get_run(recorder.run_id)
    assert run.data.metrics["loss"] == 0.5 and run.info.status == "KILLED"
