"""The data group: its options (each a reader in `images/`), its schema, and the splits
a run trains on.

Every option gives its images as its files hold them; `load` then takes the same steps
for all: the first `train_size` / `test_size` images if asked, validation from the start
of the training part, pixels as float32 (uint8 divided by 255, floats as they are), and
the optional standardization. Input shape and number of classes follow from the arrays.
No TensorFlow here: only Fashion-MNIST's download imports Keras, when it is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from experiments.core.options import Options
from experiments.images import cifar10, idx
from experiments.images.base import DataError, ImageSet, configured_folder
from experiments.images.fashion_mnist import locate_fashion_mnist
from experiments.images.npz import read_npz
from experiments.images.synthetic import synthetic


@dataclass
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    # The folder of the data files, or the npz file; None for generated data: the
    # datasets' source in MLflow.
    folder: str | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1


# A data set option's builder returns its images as its files hold them.
DATASETS = Options("data")
# The first N images of the files, for every set read from files.
_SUBSET = {"train_size", "test_size"}
# The images in the official files of a set: the upper bound the config checks know.
# MNIST is not here: its folder may hold the full set or a subset such as mnist-10k.
OFFICIAL_SIZES = {"fashion_mnist": (60000, 10000), "cifar10": (50000, 10000)}


@DATASETS.register("fashion_mnist", may_use={"dir", *_SUBSET})
def fashion_mnist(cfg: DataConfig) -> ImageSet:
    return idx.read_folder(locate_fashion_mnist(cfg.dir), idx.FASHION_MNIST)


@DATASETS.register("mnist", uses={"dir"}, may_use=_SUBSET)
def mnist(cfg: DataConfig) -> ImageSet:
    folder = configured_folder(cfg.dir, "data.dir (or MNIST_DIR)", idx.MNIST.hint)
    return idx.read_folder(folder, idx.MNIST)


@DATASETS.register("cifar10", uses={"dir"}, may_use=_SUBSET)
def cifar_10(cfg: DataConfig) -> ImageSet:
    return cifar10.read_folder(cifar10.locate(cfg.dir))


@DATASETS.register("npz", uses={"path"}, may_use=_SUBSET)
def npz(cfg: DataConfig) -> ImageSet:
    return read_npz(Path(cfg.path).expanduser())


@DATASETS.register(
    "synthetic", uses={"train_size", "test_size", "image_size", "num_classes", "noise"}
)
def generated(cfg: DataConfig) -> ImageSet:
    (x_train, y_train), (x_test, y_test) = synthetic(cfg)
    where = f"data={cfg.name.value}"
    return ImageSet(x_train, y_train, x_test, y_test, None, where, where)


DataName = DATASETS.enum("DataName", __name__)


@dataclass
class DataConfig:
    name: DataName = DataName.fashion_mnist
    dir: str | None = None  # the folder of the files: fashion_mnist, mnist, cifar10
    path: str | None = None  # the file: npz
    validation_size: int = 5000
    standardize: bool = False
    # synthetic: how many images to make; a set read from files: its first N (null: all)
    train_size: int | None = None
    test_size: int | None = None
    # synthetic only
    image_size: int | None = None
    num_classes: int | None = None
    noise: float | None = None


def load(cfg: DataConfig) -> Splits:
    """The notebook's splits as float32 (converted once here, never per step):
    validation = the first `validation_size` training images, uint8 pixels / 255,
    optionally standardized with the training split's per-pixel mean and std."""
    images = _first(DATASETS.build(cfg.name, cfg), cfg.train_size, cfg.test_size)
    _check_split_sizes(cfg, images)

    x_full, x_test = _as_float(images.x_train), _as_float(images.x_test)
    y_full, y_test = images.y_train, images.y_test
    n_val = cfg.validation_size
    x_val, x_train = x_full[:n_val], x_full[n_val:]
    y_val, y_train = y_full[:n_val], y_full[n_val:]

    if cfg.standardize:
        mean = x_train.mean(axis=0, keepdims=True)
        std = x_train.std(axis=0, keepdims=True)
        std[std == 0] = 1.0  # a pixel blank in every training image stays 0 instead of NaN
        x_train, x_val, x_test = ((x - mean) / std for x in (x_train, x_val, x_test))

    return Splits(
        folder=images.source,
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=y_train.astype(np.int32),
        x_val=np.ascontiguousarray(x_val, dtype=np.float32),
        y_val=y_val.astype(np.int32),
        x_test=np.ascontiguousarray(x_test, dtype=np.float32),
        y_test=y_test.astype(np.int32),
    )


def _as_float(x: np.ndarray) -> np.ndarray:
    """uint8 pixels in [0, 1]; float pixels as the user scaled them."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    return x.astype(np.float32)


def _first(images: ImageSet, train_size: int | None, test_size: int | None) -> ImageSet:
    """The first `train_size` training and `test_size` test images (None: all of them)."""
    for split, size, found in (
        ("train", train_size, images.x_train),
        ("test", test_size, images.x_test),
    ):
        if size is not None and size > len(found):
            name = "training" if split == "train" else "test"
            raise DataError(
                f"{getattr(images, f'{split}_from')}: {len(found)} {name} images, fewer than "
                f"data.{split}_size={size} asks for: it must be at most {len(found)}, or null "
                "for all of them"
            )
    return replace(
        images,
        x_train=images.x_train[:train_size],
        y_train=images.y_train[:train_size],
        x_test=images.x_test[:test_size],
        y_test=images.y_test[:test_size],
    )


def _check_split_sizes(cfg: DataConfig, images: ImageSet) -> None:
    """Every split holds at least one image. The config checks know the official files'
    sizes; a folder or an npz may hold fewer, and an empty split would fail later, deep
    in the dataset digest or in Keras."""
    n_full = len(images.y_train)
    if cfg.validation_size >= n_full:
        raise DataError(
            f"{images.train_from}: {n_full} training images, and data.validation_size="
            f"{cfg.validation_size} takes the first ones for validation: it must be below "
            f"{n_full}, leaving images to train on"
        )
    if len(images.y_test) == 0:
        hint = f"; {images.hint}" if images.hint else ""
        raise DataError(f"{images.test_from}: no test images, at least one is needed{hint}")
