"""The IDX files of MNIST and Fashion-MNIST (gzip'd or plain): each file's magic number,
counts and sizes checked, so a truncated or corrupt file fails with its name instead of a
reshape error deep inside NumPy.

Both sets share the four file names and the 28x28 digits-sized images with ten classes;
an `IdxSet` says which set a folder should hold, for its checks and its messages.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.images.base import ImageSet, data_error, open_regular

IMAGES_MAGIC = 2051  # unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # unsigned byte, 1 dimension
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class IdxSet:
    """One data set kept as IDX files: what its images look like, how to supply it."""

    hint: str
    image_shape: tuple[int, ...] = (28, 28)
    classes: int = 10


FASHION_MNIST = IdxSet(
    "supply Fashion-MNIST with data.dir=<folder> or FASHION_MNIST_DIR=<folder> "
    "(the four *-ubyte.gz files), or copy them into ~/.keras/datasets/fashion-mnist/"
)
MNIST = IdxSet(
    "supply MNIST with data=mnist data.dir=<folder> or MNIST_DIR=<folder> "
    "(the four *-ubyte.gz files of MNIST, or of a subset in the same format)"
)


def read_idx(path: Path, expect_magic: int, hint: str = "") -> np.ndarray:
    """One IDX file (gzip'd or plain) as a uint8 array, its header checked against its size."""
    try:
        with open_regular(path, hint) as f:
            raw = (gzip.GzipFile(fileobj=f) if path.suffix == ".gz" else f).read()
    except (OSError, EOFError, zlib.error) as e:
        raise data_error(path, f"unreadable or truncated ({e})", hint) from None

    if len(raw) < 8:
        raise data_error(path, f"truncated header ({len(raw)} bytes)", hint)
    (magic,) = struct.unpack(">i", raw[:4])
    if magic != expect_magic:
        raise data_error(path, f"magic number {magic}, expected {expect_magic}", hint)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise data_error(path, f"truncated header ({len(raw)} bytes)", hint)
    shape = struct.unpack(f">{ndim}i", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise data_error(path, f"{len(raw)} bytes but its header {shape} needs {expected}", hint)
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_pair(
    images_path: Path, labels_path: Path, dataset: IdxSet = FASHION_MNIST
) -> tuple[np.ndarray, np.ndarray]:
    """Images and their labels, which must agree in number and fit the data set."""
    images = read_idx(images_path, IMAGES_MAGIC, dataset.hint)
    labels = read_idx(labels_path, LABELS_MAGIC, dataset.hint)
    if images.shape[0] != labels.shape[0]:
        raise data_error(
            images_path,
            f"{images.shape[0]} images but {labels_path.name} has {labels.shape[0]} labels",
            dataset.hint,
        )
    if images.shape[1:] != dataset.image_shape:
        raise data_error(
            images_path, f"images are {images.shape[1:]}, expected {dataset.image_shape}"
        )
    if labels.size and labels.max() >= dataset.classes:
        raise data_error(
            labels_path,
            f"label {labels.max()} outside 0-{dataset.classes - 1}",
            dataset.hint,
        )
    return images, labels


def read_folder(folder: Path, dataset: IdxSet) -> ImageSet:
    """The four files of a folder, training then test."""
    (x_train, y_train), (x_test, y_test) = (
        read_pair(*(folder / name for name in FILES[split]), dataset) for split in ("train", "test")
    )
    return ImageSet(
        x_train,
        y_train,
        x_test,
        y_test,
        source=str(folder.resolve()),
        train_from=str(folder / FILES["train"][0]),
        test_from=str(folder / FILES["test"][0]),
        hint=dataset.hint,
    )
