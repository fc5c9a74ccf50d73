"""The whole study through the real entry point, on synthetic data, into a temporary
MLflow store: nested runs, continuous steps, the comparison, model A reloaded from a run
id, and each way a source run can be wrong."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from helpers.workspace import Workspace

from experiments.diagnostics import verdict

FREEZE, FINETUNE, BASELINE = 2, 3, 4
REGISTERED = "fashion_model_a"
STUDY = [
    "experiment=transfer",
    "data=synthetic",
    "model.hidden=[32,16]",
    "training.epochs=3",
    "training.verbose=0",
    "optimizer.learning_rate=0.05",
    f"transfer.baseline_epochs={BASELINE}",
    f"transfer.freeze_epochs={FREEZE}",
    f"transfer.finetune_epochs={FINETUNE}",
]

# One worker runs the whole module, so its module-scoped fixtures are built once; slow:
# the shared study trains three models end to end.
pytestmark = [pytest.mark.xdist_group("transfer.test_study"), pytest.mark.slow]


@dataclass
class Done:
    ws: Workspace
    study: object  # mlflow Run
    children: dict[str, object]


def _study_runs(ws: Workspace):
    return [r for r in ws.runs() if r.data.tags.get("transfer_study") == "true"]


def _children(ws: Workspace, parent_id: str) -> dict[str, object]:
    return {
        r.info.run_name: r for r in ws.runs() if r.data.tags.get("mlflow.parentRunId") == parent_id
    }


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Done:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        ws = Workspace(tmp_path_factory.mktemp("study"))
        assert ws.train(*STUDY, f"transfer.register_as={REGISTERED}") == 0
    (study,) = _study_runs(ws)
    return Done(ws, study, _children(ws, study.info.run_id))


def test_one_study_run_with_three_nested_runs(done):
    assert done.study.info.status == "FINISHED"
    assert done.study.info.run_name.startswith("transfer")
    assert sorted(done.children) == ["B_on_A", "baseline_B", "pretrain_A"]
    assert all(c.info.status == "FINISHED" for c in done.children.values())
    # The study run is the only top-level run; nothing else was created.
    assert len(done.ws.runs()) == 4
    assert done.study.data.params["transfer.freeze_epochs"] == str(FREEZE)
    assert done.study.data.params["task_a.classes"] == "[0, 1, 2, 3, 4, 7, 8, 9]"


def test_each_nested_run_is_its_phases_configuration_and_has_a_verdict(done):
    """Seeds of one study group by phase (`group_hash` = the study's and the phase); each
    nested run gets its gradient verdict, the study run the most severe of them."""
    study_group = done.study.data.tags["group_hash"]
    for name, child in done.children.items():
        assert child.data.tags["group_hash"] == f"{study_group}/{name}"
        assert child.data.tags["gradient_health"] in ("healthy", "vanishing", "dying")
    worst = min(
        (c.data.tags["gradient_health"] for c in done.children.values()),
        key=verdict.SEVERITY.index,
    )
    assert done.study.data.tags["gradient_health"] == worst
    assert done.study.data.tags["gradient_health_reason"].split(":")[0] in done.children


def test_b_on_a_steps_run_on_across_the_phase_change(done):
    client = done.ws.client()
    b_on_a = done.children["B_on_A"]
    for metric in ("loss", "val_loss", "val_accuracy", "accuracy"):
        steps = [m.step for m in client.get_metric_history(b_on_a.info.run_id, metric)]
        assert steps == list(range(FREEZE + FINETUNE)), metric
    phase = client.get_metric_history(b_on_a.info.run_id, "reused_layers_trainable")
    assert [(m.step, m.value) for m in phase] == [(s, float(s >= FREEZE)) for s in range(5)]
    assert b_on_a.data.tags["phase_change_step"] == str(FREEZE)

    baseline = done.children["baseline_B"].info.run_id
    assert [m.step for m in client.get_metric_history(baseline, "val_loss")] == list(
        range(BASELINE)
    )
    pretrain = done.children["pretrain_A"].info.run_id
    assert [m.step for m in client.get_metric_history(pretrain, "val_loss")] == [0, 1, 2]


def test_every_nested_run_carries_gradient_diagnostics_across_its_phases(done):
    client = done.ws.client()

    def steps(run_name: str, metric: str) -> list[int]:
        run_id = done.children[run_name].info.run_id
        return [m.step for m in client.get_metric_history(run_id, metric)]

    # Probes at initialization and after every epoch; B on A's go on across the phases.
    assert steps("pretrain_A", "layers/grad/signal_std/layer_01") == [0, 1, 2, 3]
    assert steps("baseline_B", "layers/grad/signal_std/layer_02") == list(range(BASELINE + 1))
    assert steps("B_on_A", "layers/grad/signal_std/layer_01") == list(range(FREEZE + FINETUNE + 1))
    assert steps("B_on_A", "grad/global_norm_mean") == list(range(FREEZE + FINETUNE))
    for name in ("pretrain_A", "baseline_B", "B_on_A"):
        run_id = done.children[name].info.run_id
        logged = {a.path for a in client.list_artifacts(run_id, "diagnostics")}
        assert "diagnostics/diagnostics.json" in logged, name
    # Frozen layers are probed too: their kernel gradient is measured though not applied.
    frozen = client.get_metric_history(
        done.children["B_on_A"].info.run_id, "layers/grad/kernel_norm/layer_01"
    )
    assert all(m.value > 0 for m in frozen)


def test_each_phase_logs_its_own_optimizer(done):
    params = done.children["B_on_A"].data.params
    assert float(params["freeze.optimizer_config.learning_rate"]) == pytest.approx(0.05)
    # Fine-tuning runs at transfer.finetune_learning_rate.
    assert float(params["finetune.optimizer_config.learning_rate"]) == pytest.approx(0.001)
    assert (params["freeze.epochs"], params["finetune.epochs"]) == (str(FREEZE), str(FINETUNE))
    # Frozen: only the sigmoid unit trains (16 weights + 1 bias); unfrozen: everything.
    assert params["freeze.trainable_params"] == "17"
    assert params["finetune.trainable_params"] == str(28 * 28 * 32 + 32 + 32 * 16 + 16 + 17)
    # The rate each epoch used: each phase compiles its own optimizer.
    rates = done.ws.client().get_metric_history(done.children["B_on_A"].info.run_id, "lr")
    assert [m.value for m in sorted(rates, key=lambda m: m.step)] == pytest.approx(
        [0.05] * FREEZE + [0.001] * FINETUNE
    )
    baseline = done.children["baseline_B"].data.params
    assert float(baseline["baseline.optimizer_config.learning_rate"]) == pytest.approx(0.05)
    assert done.children["pretrain_A"].data.params["pretrain.epochs"] == "3"


def test_the_study_run_compares_the_two_b_models(done):
    metrics = done.study.data.metrics
    baseline = done.children["baseline_B"].data.metrics["test_accuracy"]
    transfer = done.children["B_on_A"].data.metrics["test_accuracy"]
    assert metrics["test_accuracy_baseline"] == pytest.approx(baseline)
    assert metrics["test_accuracy_transfer"] == pytest.approx(transfer)
    assert metrics["test_accuracy_A"] == pytest.approx(
        done.children["pretrain_A"].data.metrics["test_accuracy"]
    )
    assert transfer < 1.0, "a perfect B on A leaves no ratio to check: change the settings"
    assert metrics["error_rate_ratio"] == pytest.approx((1 - baseline) / (1 - transfer))
    client = done.ws.client()
    plots = [a.path for a in client.list_artifacts(done.study.info.run_id, "plots")]
    assert plots == ["plots/transfer_curves.png"]
    (model_a,) = client.get_run(done.children["pretrain_A"].info.run_id).outputs.model_outputs
    assert client.get_logged_model(model_a.model_id).source_run_id == (
        done.children["pretrain_A"].info.run_id
    )
    assert done.study.data.tags["model_A_run_id"] == done.children["pretrain_A"].info.run_id


def test_model_a_loads_from_an_earlier_run(done):
    # The study run's id will do: it names the run holding model A (its pretrain_A).
    source = done.study
    before = {r.info.run_id for r in _study_runs(done.ws)}
    assert done.ws.train(*STUDY, f"transfer.source_run_id={source.info.run_id}") == 0

    (study,) = [r for r in _study_runs(done.ws) if r.info.run_id not in before]
    children = _children(done.ws, study.info.run_id)
    pretrain = children["pretrain_A"]
    assert study.info.status == "FINISHED" and sorted(children) == sorted(done.children)
    assert "loss" not in pretrain.data.metrics  # not trained again
    assert pretrain.data.tags["model_A_run_id"] == done.children["pretrain_A"].info.run_id
    # The same weights on the same test set: the same accuracy on task A.
    assert pretrain.data.metrics["test_accuracy"] == pytest.approx(
        done.children["pretrain_A"].data.metrics["test_accuracy"]
    )
    # Same seed, same model A: the B runs repeat the first study's numbers.
    for key in ("test_accuracy_baseline", "test_accuracy_transfer"):
        assert study.data.metrics[key] == pytest.approx(done.study.data.metrics[key], abs=1e-6)


def test_model_a_is_registered_and_reused_from_the_registry(done):
    client = done.ws.client()
    version = client.get_model_version_by_alias(REGISTERED, "pretrained")
    pretrain_id = done.children["pretrain_A"].info.run_id
    assert version.run_id == pretrain_id
    (logged,) = done.children["pretrain_A"].outputs.model_outputs
    assert version.source == f"models:/{logged.model_id}"
    assert done.children["pretrain_A"].data.tags == done.children["pretrain_A"].data.tags | {
        "registered_model": f"models:/{REGISTERED}@pretrained"
    }

    before = {r.info.run_id for r in _study_runs(done.ws)}
    source = f"transfer.source=models:/{REGISTERED}@pretrained"
    assert done.ws.train(*STUDY, source) == 0
    (study,) = [r for r in _study_runs(done.ws) if r.info.run_id not in before]
    pretrain = _children(done.ws, study.info.run_id)["pretrain_A"]
    assert (
        "loss" not in pretrain.data.metrics and pretrain.data.tags["model_A_run_id"] == pretrain_id
    )
    for key in ("test_accuracy_baseline", "test_accuracy_transfer"):
        assert study.data.metrics[key] == pytest.approx(done.study.data.metrics[key], abs=1e-6)


def test_an_unknown_registered_model(done, capsys):
    line = _fails(done, capsys, "transfer.source=models:/no_such_model@pretrained")
    assert "has no model 'no_such_model' with alias 'pretrained'" in line


def _fails(done, capsys, *overrides: str) -> str:
    """Runs a study expected to fail; returns its one-line message after checking that
    the study run and its pretrain_A run ended FAILED saying the same."""
    before = {r.info.run_id for r in _study_runs(done.ws)}
    capsys.readouterr()
    assert done.ws.train(*STUDY, *overrides) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: transfer.source"), err
    (study,) = [r for r in _study_runs(done.ws) if r.info.run_id not in before]
    assert study.info.status == "FAILED"
    assert study.data.tags["failure_reason"] == err[0].removeprefix("error: ")
    assert _children(done.ws, study.info.run_id)["pretrain_A"].info.status == "FAILED"
    return err[0]


def test_a_missing_run_id(done, capsys):
    line = _fails(done, capsys, "transfer.source_run_id=0123456789abcdef0123456789abcdef")
    assert "no such run in sqlite:///" in line


def test_a_run_without_a_model(done, capsys):
    client = done.ws.client()
    empty = client.create_run(done.study.info.experiment_id, run_name="no model").info.run_id
    client.set_terminated(empty)
    line = _fails(done, capsys, f"transfer.source_run_id={empty}")
    assert "has no logged model" in line


def test_a_file_that_is_not_a_safe_keras_model(done, capsys, tmp_path):
    import keras

    # A Lambda layer holds Python code: safe loading must refuse to run it.
    unsafe = keras.Sequential([keras.Input(shape=(28, 28)), keras.layers.Lambda(lambda x: x * 2)])
    (tmp_path / "model").mkdir()
    unsafe.save(tmp_path / "model" / "model.keras")
    client = done.ws.client()
    run_id = client.create_run(done.study.info.experiment_id, run_name="unsafe").info.run_id
    client.log_artifact(run_id, str(tmp_path / "model" / "model.keras"), "model")
    line = _fails(done, capsys, f"transfer.source_run_id={run_id}")
    assert "cannot be loaded safely" in line and "safe_mode" in line


def test_a_file_that_is_not_a_keras_archive_says_so(done, capsys, tmp_path):
    """Keras' own message for a file that is not a zip archive was "File not found"."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.keras").write_bytes(b"not a keras archive at all")
    client = done.ws.client()
    run_id = client.create_run(done.study.info.experiment_id, run_name="garbage").info.run_id
    client.log_artifact(run_id, str(tmp_path / "model" / "model.keras"), "model")
    line = _fails(done, capsys, f"transfer.source_run_id={run_id}")
    assert "model/model.keras is not a Keras archive" in line and "File not found" not in line


def test_a_model_for_other_images(done, capsys):
    line = _fails(
        done,
        capsys,
        "data.image_size=14",
        f"transfer.source_run_id={done.children['pretrain_A'].info.run_id}",
    )
    assert "inputs of shape (28, 28), the data's images are (14, 14)" in line


def test_a_model_with_another_hidden_stack(done, capsys):
    line = _fails(
        done,
        capsys,
        "model.hidden=[32,8]",
        f"transfer.source_run_id={done.study.info.run_id}",
    )
    assert "hidden stack does not fit" in line and "layer 4 is hidden_02 Dense" in line


def test_a_model_with_another_output(done, capsys):
    line = _fails(done, capsys, f"transfer.source_run_id={done.children['baseline_B'].info.run_id}")
    assert "output layer is output Dense[sigmoid]" in line and "one softmax unit" in line


def test_an_exploding_phase_ends_the_study_failed_saying_which(done):
    before = {r.info.run_id for r in _study_runs(done.ws)}
    assert done.ws.train(*STUDY, "optimizer.learning_rate=1e12") == 0

    (study,) = [r for r in _study_runs(done.ws) if r.info.run_id not in before]
    children = _children(done.ws, study.info.run_id)
    assert study.info.status == "FAILED"
    assert study.data.tags["failure_reason"].startswith("pretrain_A: non-finite")
    assert study.data.tags["failed_phase"] == "pretrain_A"
    assert list(children) == ["pretrain_A"]  # nothing trains on top of a broken model A
    # The gradient norm overflowed while the loss was still finite: exploding.
    tags = children["pretrain_A"].data.tags
    assert (tags["gradient_health"], tags["gradient_health_layer"]) == ("exploding", "hidden_02")
    assert study.data.tags["gradient_health"] == "exploding"
    assert study.data.tags["gradient_health_reason"].startswith("pretrain_A: non-finite")
    assert children["pretrain_A"].info.status == "FAILED"
    assert "model" not in {
        a.path for a in done.ws.client().list_artifacts(children["pretrain_A"].info.run_id)
    }
