"""Task A / task B of the transfer study, cut from the usual splits (NumPy only).

Kept apart from the study itself so that the entry point can name `TransferError` in
its error handling without importing TensorFlow: a run that fails on its data must
answer without paying for Keras.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from experiments.data import Splits


class TransferError(RuntimeError):
    """The study cannot run as configured (source run, data); the message is one line."""


@dataclass
class Tasks:
    a: Splits
    b: Splits
    a_classes: list[int]  # the original class of each task-A label 0, 1, ...


def split_labels(
    y: np.ndarray, b_classes: list[int], num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is task B, task-A labels, task-B labels) of one label array: task A keeps the
    other classes renumbered 0.. in their order (int32); task B is 1.0 for the second
    of `b_classes`, 0.0 for the first (float32, for binary cross-entropy)."""
    in_b = np.isin(y, b_classes)
    a_classes = [c for c in range(num_classes) if c not in b_classes]
    renumber = np.full(num_classes, -1, dtype=np.int32)
    renumber[a_classes] = np.arange(len(a_classes), dtype=np.int32)
    y_a = renumber[y[~in_b]]
    y_b = (y[in_b] == b_classes[1]).astype(np.float32)
    return in_b, y_a, y_b


def split_tasks(splits: Splits, b_classes: list[int], train_size_b: int) -> Tasks:
    """Training, validation and test sets split alike; only task B's training set is
    cut, to its first `train_size_b` images."""
    num_classes = max(splits.num_classes, max(b_classes) + 1)
    parts = {}
    for name in ("train", "val", "test"):
        x, y = getattr(splits, f"x_{name}"), getattr(splits, f"y_{name}")
        in_b, y_a, y_b = split_labels(y, b_classes, num_classes)
        parts[name] = ((x[~in_b], y_a), (x[in_b], y_b))
    (xa, ya), (xb, yb) = parts["train"]
    parts["train"] = ((xa, ya), (xb[:train_size_b], yb[:train_size_b]))

    def task(index: int) -> Splits:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (parts[n][index] for n in parts)
        return Splits(x_tr, y_tr, x_va, y_va, x_te, y_te, folder=splits.folder)

    tasks = Tasks(task(0), task(1), [c for c in range(num_classes) if c not in b_classes])
    for label, split in (("A", tasks.a), ("B", tasks.b)):
        for name in ("train", "val", "test"):
            if len(getattr(split, f"y_{name}")) == 0:
                raise TransferError(
                    f"task {label} has no {name} images: transfer.task_b_classes="
                    f"{list(b_classes)} leaves none in this data"
                )
    return tasks
