"""Task A/B split and the reuse of model A's layers, on hand-made arrays and tiny models."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.compose import compose

from experiments.config.checks import validate
from experiments.data import Splits
from experiments.models.nets import build_model
from experiments.transfer.models import (
    build_b_on_a,
    build_baseline_b,
    set_reused_trainable,
)
from experiments.transfer.study import error_rate_ratio
from experiments.transfer.tasks import TransferError, split_labels, split_tasks

B_CLASSES = [5, 6]

# One worker runs the whole module, so its module-scoped fixtures are built once.
pytestmark = pytest.mark.xdist_group("transfer.test_tasks")


def test_split_labels_moves_every_class_where_it_belongs():
    y = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 6, 5, 9, 0], dtype=np.int32)
    in_b, y_a, y_b = split_labels(y, B_CLASSES, num_classes=10)

    assert in_b.tolist() == [c in (5, 6) for c in y]
    # Task A keeps the order of the remaining classes: 7, 8, 9 -> 5, 6, 7.
    assert y_a.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 7, 0]
    assert y_a.dtype == np.int32
    # Task B: 1 for the second class (shirt), 0 for the first (sandal), float32.
    assert y_b.tolist() == [0.0, 1.0, 1.0, 0.0]
    assert y_b.dtype == np.float32


def test_split_labels_with_other_b_classes():
    y = np.arange(10, dtype=np.int32)
    in_b, y_a, y_b = split_labels(y, [7, 2], num_classes=10)
    assert np.flatnonzero(in_b).tolist() == [2, 7]
    assert y_a.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]  # 0,1,3,4,5,6,8,9 in order
    assert y_b.tolist() == [1.0, 0.0]  # class 2 is the second listed: label 1


def _splits(n_train: int, n_val: int, n_test: int) -> Splits:
    """Labels cycling 0-9; each image's pixels hold its index, to follow images around."""

    def part(n: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        index = np.arange(start, start + n, dtype=np.float32)
        return np.repeat(index, 4).reshape(n, 2, 2), (np.arange(n) % 10).astype(np.int32)

    (xtr, ytr), (xva, yva), (xte, yte) = part(n_train, 0), part(n_val, 1000), part(n_test, 2000)
    return Splits(xtr, ytr, xva, yva, xte, yte)


def test_split_tasks_counts_and_the_train_size_b_cut():
    tasks = split_tasks(_splits(100, 50, 30), B_CLASSES, train_size_b=7)

    assert len(tasks.a.y_train) == 80 and len(tasks.a.y_val) == 40 and len(tasks.a.y_test) == 24
    # Only task B's training set is cut, to its first images; validation and test are whole.
    assert len(tasks.b.y_train) == 7 and len(tasks.b.y_val) == 10 and len(tasks.b.y_test) == 6
    assert tasks.b.x_train[:, 0, 0].tolist() == [5, 6, 15, 16, 25, 26, 35]
    assert tasks.b.y_train.tolist() == [0, 1, 0, 1, 0, 1, 0]
    # Images stay with their labels: image i had label i % 10.
    original = tasks.a.x_val[:, 0, 0].astype(int) % 10
    assert np.array_equal(np.array(tasks.a_classes)[tasks.a.y_val], original)
    assert tasks.a_classes == [0, 1, 2, 3, 4, 7, 8, 9]
    assert tasks.a.num_classes == 8 and tasks.b.y_val.dtype == np.float32


def test_split_tasks_refuses_an_empty_task():
    splits = _splits(100, 50, 30)
    splits.y_test[:] = 0  # no class 5 or 6 in the test set
    with pytest.raises(TransferError, match="task B has no test images"):
        split_tasks(splits, B_CLASSES, train_size_b=7)


def test_error_rate_ratio():
    assert error_rate_ratio(0.8, 0.9) == pytest.approx(2.0)
    assert error_rate_ratio(0.9, 0.8) == pytest.approx(0.5)
    assert error_rate_ratio(0.8, 1.0) is None


@pytest.fixture(scope="module")
def tiny():
    """A tiny model A (8 classes) trained briefly, task B data, and the config."""
    from experiments.training import loop as training
    from experiments.training.optimizers import make_optimizer

    cfg = validate(
        compose(
            [
                "experiment=transfer",
                "data=synthetic",
                "model.hidden=[16,8,8]",
                "optimizer.learning_rate=0.05",
                "training.verbose=0",
            ]
        )
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(64, 6, 6)).astype(np.float32)
    y_a = rng.integers(0, 8, size=64).astype(np.int32)
    y_b = rng.integers(0, 2, size=64).astype(np.float32)
    task_b = Splits(x, y_b, x[:16], y_b[:16], x[:16], y_b[:16])
    training.seed_everything(0)
    model_a = build_model(cfg.model, cfg.init, cfg.activation, cfg.normalization, (6, 6), 8)
    training.compile_model(model_a, make_optimizer(cfg.optimizer, cfg.clipping), cfg.training)
    model_a.fit(x, y_a, epochs=1, verbose=0)
    return cfg, model_a, task_b


def _fit_b(cfg, model, task_b, epochs: int = 2) -> None:
    """One phase as the study runs it: a fresh optimizer, a recompile, a fit."""
    from experiments.training import loop as training
    from experiments.training.optimizers import make_optimizer

    optimizer = make_optimizer(cfg.optimizer, cfg.clipping)
    training.compile_model(model, optimizer, cfg.training, loss="binary_crossentropy")
    training.fit(model, task_b, cfg.training, lambda values, step: None, epochs=epochs)


def _weights(layers) -> list[np.ndarray]:
    return [w.numpy().copy() for layer in layers for w in layer.weights]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_b_on_a_starts_from_model_a_and_never_changes_it(tiny):
    cfg, model_a, task_b = tiny
    before = [w.copy() for w in model_a.get_weights()]
    model = build_b_on_a(model_a)

    assert [layer.name for layer in model.layers] == [
        layer.name for layer in model_a.layers
    ]  # the same stack, output replaced
    assert model.layers[-1].units == 1 and model.layers[-1].get_config()["activation"] == "sigmoid"
    assert _same(_weights(model.layers[:-1]), _weights(model_a.layers[:-1]))

    _fit_b(cfg, model, task_b)  # every layer trainable
    assert not _same(_weights(model.layers[:-1]), _weights(model_a.layers[:-1]))
    assert _same(model_a.get_weights(), before)


def test_frozen_layers_stay_put_then_move_once_unfrozen(tiny):
    cfg, model_a, task_b = tiny
    model = build_b_on_a(model_a)
    reused, output = model.layers[:-1], model.layers[-1:]
    start_reused, start_output = _weights(reused), _weights(output)

    set_reused_trainable(model, "freeze")
    _fit_b(cfg, model, task_b)
    assert _same(_weights(reused), start_reused)
    assert not _same(_weights(output), start_output)

    frozen_end = _weights(reused)
    set_reused_trainable(model, "all")
    _fit_b(cfg, model, task_b)
    moved = [not np.array_equal(a, b) for a, b in zip(frozen_end, _weights(reused), strict=True)]
    assert all(moved)  # every kernel and bias of every reused Dense layer


def test_trainable_from_a_block_keeps_the_ones_below_frozen(tiny):
    cfg, model_a, task_b = tiny
    model = build_b_on_a(model_a)
    by_name = {layer.name: layer for layer in model.layers}
    set_reused_trainable(model, "hidden_02")
    assert [name for name, layer in by_name.items() if layer.trainable and layer.weights] == [
        "hidden_02",
        "hidden_03",
        "output",
    ]

    before = {name: _weights([layer]) for name, layer in by_name.items() if layer.weights}
    _fit_b(cfg, model, task_b)
    assert _same(_weights([by_name["hidden_01"]]), before["hidden_01"])
    for name in ("hidden_02", "hidden_03", "output"):
        assert not _same(_weights([by_name[name]]), before[name])

    set_reused_trainable(model, "none")
    assert [layer.name for layer in model.layers if layer.trainable and layer.weights] == ["output"]


def test_baseline_b_is_the_same_stack_from_scratch(tiny):
    cfg, model_a, _ = tiny
    baseline = build_baseline_b(cfg.model, cfg.init, cfg.activation, cfg.normalization, (6, 6))
    assert [layer.name for layer in baseline.layers] == [layer.name for layer in model_a.layers]
    shapes = [tuple(w.shape) for w in baseline.weights]
    assert shapes[:-2] == [tuple(w.shape) for w in model_a.weights][:-2]
    assert shapes[-2:] == [(8, 1), (1,)]
    assert not _same(_weights(baseline.layers[1:2]), _weights(model_a.layers[1:2]))  # hidden_01
