"""CIFAR-10's "binary version": data_batch_1.bin .. data_batch_5.bin and test_batch.bin,
each a run of 3,073-byte records (one label byte, then the 32x32 image as 1,024 red,
1,024 green and 1,024 blue bytes, each plane row by row), read as uint8 32x32x3 (HWC).

The "python version" of the same set is pickled, and unpickling a file from a downloaded
folder can run any code: it is never read, and a folder holding only it is told so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.images.base import ImageSet, configured_folder, data_error, read_regular

SIDE = 32
CHANNELS = 3
RECORD_BYTES = 1 + CHANNELS * SIDE * SIDE
CLASSES = 10
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
# The folder the official cifar-10-binary.tar.gz unpacks into.
UNPACKED = "cifar-10-batches-bin"
HOW_TO_SUPPLY = (
    "supply the CIFAR-10 binary version with data=cifar10 data.dir=<folder> or "
    "CIFAR10_DIR=<folder> (data_batch_1.bin .. data_batch_5.bin and test_batch.bin, "
    "unpacked from cifar-10-binary.tar.gz)"
)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (images N x 32 x 32 x 3, labels N), both uint8."""
    if not path.exists() and path.with_suffix("").is_file():
        raise data_error(
            path,
            f"file not found; {path.with_suffix('').name} beside it is the pickled python "
            "version, which is never read (unpickling can run code)",
            HOW_TO_SUPPLY,
        )
    raw = read_regular(path, HOW_TO_SUPPLY)
    if len(raw) % RECORD_BYTES:
        raise data_error(
            path,
            f"{len(raw):,} bytes, not a whole number of {RECORD_BYTES:,}-byte records "
            "(1 label byte, then 1,024 red, 1,024 green and 1,024 blue bytes)",
            HOW_TO_SUPPLY,
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    if labels.size and labels.max() >= CLASSES:
        record = int(np.argmax(labels >= CLASSES))
        raise data_error(
            path,
            f"label {labels[record]} in record {record}, outside 0-{CLASSES - 1}",
            HOW_TO_SUPPLY,
        )
    planes = records[:, 1:].reshape(-1, CHANNELS, SIDE, SIDE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), labels.copy()


def locate(configured: str) -> Path:
    """data.dir, or the folder the official archive unpacks into inside it."""
    folder = configured_folder(configured, "data.dir (or CIFAR10_DIR)", HOW_TO_SUPPLY)
    inner = folder / UNPACKED
    if not (folder / TRAIN_FILES[0]).exists() and (inner / TRAIN_FILES[0]).is_file():
        return inner
    return folder


def read_folder(folder: Path) -> ImageSet:
    train = [read_batch(folder / name) for name in TRAIN_FILES]
    x_test, y_test = read_batch(folder / TEST_FILE)
    return ImageSet(
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        x_test,
        y_test,
        source=str(folder.resolve()),
        train_from=f"{folder / TRAIN_FILES[0]} .. {TRAIN_FILES[-1]}",
        test_from=str(folder / TEST_FILE),
        hint=HOW_TO_SUPPLY,
    )
