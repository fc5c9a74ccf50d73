"""The command line as users type it, in child processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from experiments.processes import child_environment

# What a run needs beyond the defaults to be short: the reproductions.
RUN = ["data=synthetic", "training.epochs=1", "diagnostics.plots=false"]


def run_cli(*args: str, cwd, timeout: int = 120, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "experiments.train", *args],
        cwd=cwd,
        env=env or child_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def imported(result: subprocess.CompletedProcess) -> set[str]:
    """Top-level packages named in -X importtime's report (on stderr)."""
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if not line.startswith("import time:")]


@pytest.mark.parametrize(
    "args", [["--help"], ["--cfg", "job"], ["experiment=selu_deep", "--cfg", "job"]]
)
def test_config_only_commands_do_not_import_tensorflow(args, tmp_path):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = imported(result)
    assert "hydra" in loaded  # the report is real
    assert "tensorflow" not in loaded and "keras" not in loaded and "mlflow" not in loaded
    assert not (tmp_path / "mlflow.db").exists()


def test_help_lists_the_groups_and_their_options(tmp_path):
    out = run_cli("--help", cwd=tmp_path).stdout
    for text in (
        "activation:",
        "leaky_relu",
        "normalization:",
        "batchnorm",
        "experiment:",
        "selu_deep",
        "layernorm",
        "schedule: constant, exponential, one_cycle, performance, piecewise, power, warmup_cosine",
        "adagrad, adam, adamax, adamw",
        "residual_deep",
        "residual_every: 2",
    ):
        assert text in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["optimizer.learning_rate=-0.5"], "optimizer.learning_rate=-0.5 is not allowed: must be > 0"),
        (["schedule=one_cycle", "schedule.div_factor=0.5"], "schedule.div_factor=0.5 is not allowed: must be >= 1"),
    ],
)  # fmt: skip
def test_invalid_value_is_one_line_and_a_non_zero_exit_without_tensorflow(tmp_path, args, message):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result) == [f"error: {message}"]
    assert "tensorflow" not in imported(result)
    assert not (tmp_path / "mlflow.db").exists()  # nothing was recorded for a config that never ran


@pytest.mark.slow
def test_missing_data_is_one_line_naming_the_file_and_how_to_supply_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli(f"data.dir={empty}", cwd=tmp_path)
    assert result.returncode == 1
    lines = error_lines(result)
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert str(empty / "train-images-idx3-ubyte.gz") in errors[0]
    assert "FASHION_MNIST_DIR" in errors[0] and "~/.keras/datasets/fashion-mnist" in errors[0]
    assert "tensorflow" not in imported(result)


@pytest.mark.slow
def test_one_short_run_on_the_real_data_lands_in_mlflow(tmp_path, fashion_mnist_dir):
    from mlflow.tracking import MlflowClient

    result = run_cli(
        f"data.dir={fashion_mnist_dir}", "training.epochs=1", "training.steps_per_epoch=100",
        "training.verbose=0", cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, "\n".join(error_lines(result))[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("gradient-lab")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["data.name"] == "fashion_mnist"
    assert 0.2 < run.data.metrics["val_accuracy"] <= 1.0  # 100 SGD steps beat chance (0.1)
    assert run.data.metrics["test_accuracy"] > 0.2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # A wrong type exited 1 with Hydra's several lines; every config error exits 2.
        (["training.epochs=abc"], "error: Error merging override training.epochs=abc: Value 'abc'"),
        # A seed Keras cannot take failed 20 s later, after TensorFlow's start-up.
        (["training.seed=-5"], "error: training.seed=-5 is not allowed: must be in 0..4294967295"),
        # Keys the schema does not know were accepted and ignored in silence.
        (["+training.epoch=5"], "error: training.epoch=5 is not allowed: no such key (did you mean training.epochs?)"),
        (["+foo=1"], "error: foo=1 is not allowed: no such key"),
        # MLflow refused it after TensorFlow's start-up, as a store error (exit 1).
        (["tracking.experiment=" + "x" * 501], "error: tracking.experiment='xxx"),
        # A mistyped preset or search trained the default net and exited 0.
        ([*RUN, "experiment=selu_dep"], "error: experiment=selu_dep is not allowed: no such option (did you mean selu_deep or relu_deep?)"),
        ([*RUN, "hparams_search=optunaa"], "error: hparams_search=optunaa is not allowed: no such option (did you mean optuna?)"),
        # Hydra's first line named the missing file only, not what was meant.
        (["activation=prelux"], "error: activation=prelux is not allowed: no such option (did you mean prelu or relu"),
    ],
    ids=["wrong-type", "seed", "typo", "stray-key", "long-experiment-name", "preset-typo", "search-typo", "option-typo"],
)  # fmt: skip
def test_every_config_error_is_one_line_and_exit_2_before_tensorflow(args, expected, tmp_path):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert line.startswith(expected)
    assert "tensorflow" not in imported(result) and "mlflow" not in imported(result)
