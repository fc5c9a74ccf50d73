"""Small Fashion-MNIST-shaped IDX folders, written the way the official files are."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from experiments.images.idx import FILES, IMAGES_MAGIC, LABELS_MAGIC


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = struct.pack(">i", magic) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_gz(path: Path, payload: bytes) -> Path:
    with gzip.open(path, "wb") as f:
        f.write(payload)
    return path


def make_dataset(folder: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "train": (rng.integers(0, 256, (n_train, 28, 28)), np.arange(n_train) % 10),
        "test": (rng.integers(0, 256, (n_test, 28, 28)), np.arange(n_test) % 10),
    }
    for split, (images, labels) in arrays.items():
        write_gz(folder / FILES[split][0], idx_bytes(IMAGES_MAGIC, images))
        write_gz(folder / FILES[split][1], idx_bytes(LABELS_MAGIC, labels))
    return arrays
