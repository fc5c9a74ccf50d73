"""Small CIFAR-10 folders in the official binary format, written from its description:
per record one label byte, then the 1,024 red, 1,024 green and 1,024 blue bytes of the
32x32 image, each plane row by row."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]


def record(label: int, red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> bytes:
    planes = (np.asarray(p, dtype=np.uint8).tobytes(order="C") for p in (red, green, blue))
    return bytes([label]) + b"".join(planes)


def random_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(planes N x 3 x 32 x 32, labels N): the channels first, as the files keep them."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), np.arange(n) % 10


def write_batch(path: Path, planes: np.ndarray, labels: np.ndarray) -> Path:
    path.write_bytes(b"".join(record(int(y), *p) for p, y in zip(planes, labels, strict=True)))
    return path


def make_cifar10(folder: Path, per_batch: int = 2, n_test: int = 3) -> dict:
    """Five training batches and a test batch; returns the planes and labels written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate([*TRAIN_FILES, "test_batch.bin"]):
        n = n_test if name == "test_batch.bin" else per_batch
        written[name] = random_images(n, seed=i)
        write_batch(folder / name, *written[name])
    return written
