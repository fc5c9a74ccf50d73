"""Fashion-MNIST from gzip'd IDX files, and a small synthetic stand-in.

Keras' own loader trusts whatever lies in its cache; this reader checks each file's
magic number, counts and sizes, so a truncated or corrupt file fails with its name
instead of a reshape error deep inside NumPy. No TensorFlow here: the download path
imports Keras only when it is needed.
"""

from __future__ import annotations

import gzip
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from experiments.core.options import Options

IMAGES_MAGIC = 2051  # unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # unsigned byte, 1 dimension
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
DOWNLOAD_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
HOW_TO_SUPPLY = (
    "supply Fashion-MNIST with data.dir=<folder> or FASHION_MNIST_DIR=<folder> "
    "(the four *-ubyte.gz files), or copy them into ~/.keras/datasets/fashion-mnist/"
)


class DataError(RuntimeError):
    """Data that cannot be found or read; the message names the file."""


@dataclass
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    # The folder of the IDX files, None for generated data: the datasets' source in MLflow.
    folder: str | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1


# What stat says of a file that is not a regular one, in words.
_KINDS = {
    "d": "a folder",
    "p": "a named pipe (FIFO)",
    "c": "a character device",
    "b": "a block device",
    "s": "a socket",
}


def _open_regular(path: Path) -> BinaryIO:
    """The file opened for reading, if it is a regular one. Opened without blocking and
    checked on the open descriptor: a FIFO named like an IDX file would otherwise wait
    forever for a writer, and a check before opening could be raced."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.filemode(mode)[0], "a special file")
            raise DataError(f"{path}: {kind}, not a regular file; {HOW_TO_SUPPLY}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_idx(path: Path, expect_magic: int) -> np.ndarray:
    """One IDX file (gzip'd or plain) as a uint8 array, its header checked against its size."""
    try:
        with _open_regular(path) as f:
            raw = (gzip.GzipFile(fileobj=f) if path.suffix == ".gz" else f).read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {HOW_TO_SUPPLY}") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: unreadable or truncated ({e}); {HOW_TO_SUPPLY}") from None

    if len(raw) < 8:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes); {HOW_TO_SUPPLY}")
    (magic,) = struct.unpack(">i", raw[:4])
    if magic != expect_magic:
        raise DataError(f"{path}: magic number {magic}, expected {expect_magic}; {HOW_TO_SUPPLY}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes); {HOW_TO_SUPPLY}")
    shape = struct.unpack(f">{ndim}i", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{path}: {len(raw)} bytes but its header {shape} needs {expected}; {HOW_TO_SUPPLY}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path}: {images.shape[0]} images but {labels_path.name} has "
            f"{labels.shape[0]} labels; {HOW_TO_SUPPLY}"
        )
    if images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: images are {images.shape[1:]}, expected (28, 28)")
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path}: label {labels.max()} outside 0-9; {HOW_TO_SUPPLY}")
    return images, labels


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "fashion-mnist"


def _has_all_files(folder: Path) -> bool:
    return all((folder / name).is_file() for pair in FILES.values() for name in pair)


def locate_fashion_mnist(configured: str | None) -> Path:
    """The folder to read: the configured one, else the Keras cache, else a Keras download."""
    if configured:
        folder = Path(configured).expanduser()
        if not folder.is_dir():
            raise DataError(
                f"{folder}: data.dir (or FASHION_MNIST_DIR) is not a folder; {HOW_TO_SUPPLY}"
            )
        return folder  # missing files there are reported by name when read
    cache = keras_cache_dir()
    if _has_all_files(cache):
        return cache
    return _download(cache)


def _download(cache: Path) -> Path:
    from keras.utils import get_file

    for pair in FILES.values():
        for name in pair:
            if (cache / name).is_file():
                continue
            try:
                get_file(
                    name,
                    origin=DOWNLOAD_ORIGIN + name,
                    cache_dir=str(cache.parents[1]),
                    cache_subdir=str(Path(cache.parent.name) / cache.name),
                )
            except Exception as e:  # noqa: BLE001 - any network failure ends the same way
                raise DataError(
                    f"{cache / name}: not found and the download failed "
                    f"({_download_reason(e)}); {HOW_TO_SUPPLY}"
                ) from None
    return cache


def _download_reason(error: Exception) -> str:
    """Keras wraps the network's error in a bare Exception: say what it says, briefly."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def load_fashion_mnist(
    folder: Path,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    train = read_pair(*(folder / name for name in FILES["train"]))
    test = read_pair(*(folder / name for name in FILES["test"]))
    return train, test


Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
# A dataset option's builder returns its (train, test) arrays and the folder they were
# read from (None for generated data).
DATASETS = Options("data")


@DATASETS.register("fashion_mnist")
def fashion_mnist(cfg: DataConfig) -> tuple[Arrays, str | None]:
    folder = locate_fashion_mnist(cfg.dir)
    return load_fashion_mnist(folder), str(folder.resolve())


@DATASETS.register(
    "synthetic", uses={"train_size", "test_size", "image_size", "num_classes", "noise"}
)
def generated(cfg: DataConfig) -> tuple[Arrays, str | None]:
    return synthetic(cfg), None


def synthetic(cfg: DataConfig, seed: int = 0) -> Arrays:
    """Class prototypes plus noise, as uint8 images: deterministic for a seed and learnable
    by a small MLP in a few epochs. Same layout as Fashion-MNIST, so every code path
    after loading is shared."""
    rng = np.random.default_rng(seed)
    side, classes = cfg.image_size, cfg.num_classes
    # A shared background plus a faint class pattern: learnable, yet not at once.
    background = rng.uniform(0.2, 0.8, size=(side, side))
    prototypes = background + rng.uniform(-0.3, 0.3, size=(classes, side, side))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % classes
        rng.shuffle(labels)
        noisy = prototypes[labels] + rng.normal(0.0, cfg.noise, size=(n, side, side))
        return np.clip(noisy * 255.0, 0, 255).astype(np.uint8), labels.astype(np.uint8)

    return draw(cfg.train_size), draw(cfg.test_size)


DataName = DATASETS.enum("DataName", __name__)


@dataclass
class DataConfig:
    name: DataName = DataName.fashion_mnist
    dir: str | None = None
    validation_size: int = 5000
    standardize: bool = False
    # synthetic only
    train_size: int | None = None
    test_size: int | None = None
    image_size: int | None = None
    num_classes: int | None = None
    noise: float | None = None


def load(cfg: DataConfig) -> Splits:
    """The notebook's splits as float32 (converted once here, never per step):
    validation = the first `validation_size` training images, pixels / 255,
    optionally standardized with the training split's per-pixel mean and std."""
    ((x_full, y_full), (x_test, y_test)), folder = DATASETS.build(cfg.name, cfg)

    _check_split_sizes(cfg, len(y_full), len(y_test), folder)

    x_full = x_full.astype(np.float32) / np.float32(255.0)
    x_test = x_test.astype(np.float32) / np.float32(255.0)
    n_val = cfg.validation_size
    x_val, x_train = x_full[:n_val], x_full[n_val:]
    y_val, y_train = y_full[:n_val], y_full[n_val:]

    if cfg.standardize:
        mean = x_train.mean(axis=0, keepdims=True)
        std = x_train.std(axis=0, keepdims=True)
        std[std == 0] = 1.0  # a pixel blank in every training image stays 0 instead of NaN
        x_train, x_val, x_test = ((x - mean) / std for x in (x_train, x_val, x_test))

    return Splits(
        folder=folder,
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=y_train.astype(np.int32),
        x_val=np.ascontiguousarray(x_val, dtype=np.float32),
        y_val=y_val.astype(np.int32),
        x_test=np.ascontiguousarray(x_test, dtype=np.float32),
        y_test=y_test.astype(np.int32),
    )


def _check_split_sizes(cfg: DataConfig, n_full: int, n_test: int, folder: str | None) -> None:
    """Every split holds at least one image. The config checks know Fashion-MNIST's
    60,000 training images; files in data.dir may hold fewer, and an empty split would
    fail later, deep in the dataset digest or in Keras."""

    def source(split: str) -> str:
        return str(Path(folder) / FILES[split][0]) if folder else f"data={cfg.name.value}"

    if cfg.validation_size >= n_full:
        raise DataError(
            f"{source('train')}: {n_full} training images, and data.validation_size="
            f"{cfg.validation_size} takes the first ones for validation: it must be below "
            f"{n_full}, leaving images to train on"
        )
    if n_test == 0:
        raise DataError(
            f"{source('test')}: no test images, at least one is needed; {HOW_TO_SUPPLY}"
        )
