"""Where Fashion-MNIST is found: the configured folder, else the Keras cache, else a
download into that cache (Keras imported only then)."""

from __future__ import annotations

import os
from pathlib import Path

from experiments.images.base import DataError, configured_folder
from experiments.images.idx import FASHION_MNIST, FILES

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
HOW_TO_SUPPLY = FASHION_MNIST.hint


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "fashion-mnist"


def _has_all_files(folder: Path) -> bool:
    return all((folder / name).is_file() for pair in FILES.values() for name in pair)


def locate_fashion_mnist(configured: str | None) -> Path:
    """The folder to read: the configured one, else the Keras cache, else a Keras download."""
    if configured:
        return configured_folder(configured, "data.dir (or FASHION_MNIST_DIR)", HOW_TO_SUPPLY)
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
