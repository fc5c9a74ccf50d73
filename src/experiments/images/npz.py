"""The user's own images: one .npz file (np.savez) holding x_train, y_train, x_test and
y_test; images N x H x W or N x H x W x C, uint8 or float; labels N integers >= 0.

Loaded with allow_pickle=False: an object array or a pickle in the file is refused, never
unpickled (unpickling can run code). Every way the file can be malformed is one line that
names the file, the array and what is allowed, before any training starts.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from experiments.images.base import ImageSet, data_error, open_regular

KEYS = ("x_train", "y_train", "x_test", "y_test")
HOW_TO_SUPPLY = (
    "supply your images with data=npz data.path=<file.npz>: "
    "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
)
_PICKLE_PROTOCOL = 0x80  # the first byte of a pickle written with protocol 2 or later
# The output layer has one unit per class up to the largest label: a stray huge label
# (an ID, not a class index) would ask for a layer of that size, then fail as "out of
# memory". No image classification set comes near this many classes.
MAX_LABEL = 99_999


def read_npz(path: Path) -> ImageSet:
    arrays = _arrays(path)
    for split in ("train", "test"):
        _check_images(path, f"x_{split}", arrays[f"x_{split}"])
        _check_labels(path, f"y_{split}", arrays[f"y_{split}"])
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise data_error(
                path,
                f"x_{split} holds {len(x)} images but y_{split} {len(y)} labels; "
                "each image needs one label",
            )
        if not len(x):
            raise data_error(path, f"x_{split} holds no images; each split needs at least one")
    train_shape, test_shape = arrays["x_train"].shape[1:], arrays["x_test"].shape[1:]
    if train_shape != test_shape:
        raise data_error(
            path,
            f"x_test images are {test_shape}, x_train's {train_shape}; "
            "both splits need the same image shape",
        )
    if max(int(arrays["y_train"].max()), int(arrays["y_test"].max())) < 1:
        raise data_error(
            path, "every label in y_train and y_test is 0; a classifier needs two classes or more"
        )
    return ImageSet(
        *(arrays[key] for key in KEYS),
        source=str(path.resolve()),
        train_from=f"{path} (x_train)",
        test_from=f"{path} (x_test)",
        hint=HOW_TO_SUPPLY,
    )


def _arrays(path: Path) -> dict[str, np.ndarray]:
    """The four arrays, no more and no fewer, read without unpickling anything."""
    with open_regular(path, HOW_TO_SUPPLY) as f:
        first = f.read(1)
        f.seek(0)
        try:
            loaded = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            if first and first[0] == _PICKLE_PROTOCOL:
                problem = "a pickle, which is never loaded (unpickling can run code)"
            else:
                problem = f"not an npz archive ({_brief(e)})"
            raise data_error(path, problem, HOW_TO_SUPPLY) from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise data_error(path, "a single .npy array, not an npz archive", HOW_TO_SUPPLY)
        with loaded:
            found = list(loaded.files)
            for key in found:
                if key not in KEYS:
                    raise data_error(
                        path,
                        f"array {key!r} is not one of {', '.join(KEYS)} (validation is "
                        "taken from the training split: data.validation_size)",
                    )
            for key in KEYS:
                if key not in found:
                    held = ", ".join(found) or "no arrays"
                    raise data_error(
                        path, f"{key} missing (it holds {held}); an npz needs {', '.join(KEYS)}"
                    )
            return {key: _array(path, loaded, key) for key in KEYS}


def _array(path: Path, loaded: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    try:
        return loaded[key]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise data_error(
                path,
                f"{key} is an object array, which is never loaded (unpickling can run code); "
                "images must be uint8 or float, labels integers",
            ) from None
        raise data_error(path, f"{key} unreadable ({_brief(e)})", HOW_TO_SUPPLY) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise data_error(path, f"{key} unreadable ({_brief(e)})", HOW_TO_SUPPLY) from None


def _check_images(path: Path, key: str, x: np.ndarray) -> None:
    if x.ndim not in (3, 4) or 0 in x.shape[1:]:
        raise data_error(
            path,
            f"{key} has shape {x.shape}; images must be N x H x W or N x H x W x C "
            "(each of H, W, C at least 1)",
        )
    if x.dtype != np.uint8 and x.dtype.kind != "f":
        raise data_error(
            path,
            f"{key} has dtype {x.dtype}; images must be uint8 (0-255, divided by 255) or "
            "float (taken as they are)",
        )
    if x.dtype.kind == "f":
        bad = x.size - int(np.count_nonzero(np.isfinite(x)))
        if bad:
            raise data_error(path, f"{key} has {bad} NaN or infinite pixels; pixels must be finite")


def _check_labels(path: Path, key: str, y: np.ndarray) -> None:
    if y.ndim != 1:
        raise data_error(
            path, f"{key} has shape {y.shape}; labels must be one per image, shape (N,)"
        )
    if y.dtype.kind not in "iu":
        raise data_error(
            path, f"{key} has dtype {y.dtype}; labels must be integers (class indices 0, 1, ...)"
        )
    if y.size and int(y.min()) < 0:
        raise data_error(path, f"{key} holds label {int(y.min())}; labels must be >= 0")
    if y.size and int(y.max()) > MAX_LABEL:
        raise data_error(
            path,
            f"{key} holds label {int(y.max())}; labels must be class indices 0-{MAX_LABEL:,}",
        )


def _brief(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:160] + "..."
