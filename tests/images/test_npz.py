"""The user's own images from an .npz: what is read, and a one-line error naming the file,
the array and what is allowed for every malformed file. No TensorFlow."""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest

from experiments.images.base import DataError
from experiments.images.npz import read_npz


def arrays(n_train: int = 12, n_test: int = 6, shape=(12, 12, 3), classes: int = 3) -> dict:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": np.arange(n_train) % classes,
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": np.arange(n_test) % classes,
    }


def test_reads_the_four_arrays_as_they_are(tmp_path):
    given = arrays()
    path = tmp_path / "mine.npz"
    np.savez_compressed(path, **given)
    images = read_npz(path)
    for key, value in given.items():
        np.testing.assert_array_equal(getattr(images, key), value)
    assert images.source == str(path.resolve())
    assert images.train_from == f"{path} (x_train)"


def test_grayscale_float_images_are_read_too(tmp_path):
    given = arrays(shape=(5, 7)) | {"x_train": np.full((12, 5, 7), 0.25, np.float64)}
    given["x_test"] = given["x_test"].astype(np.float32)
    np.savez(tmp_path / "f.npz", **given)
    images = read_npz(tmp_path / "f.npz")
    assert images.x_train.shape == (12, 5, 7) and images.x_train.dtype == np.float64


def _with(**changes) -> dict:
    return {k: v for k, v in (arrays() | changes).items() if v is not None}


def _object_array() -> np.ndarray:
    # The pickle inside would be unpickled (and could run code) with allow_pickle=True.
    return np.array([{"x": 1}] * 12, dtype=object)


MALFORMED = {
    "missing-array": (_with(y_test=None), "y_test missing (it holds x_train, y_train, x_test)"),
    "unknown-array": (_with(x_val=np.zeros((2, 12, 12, 3))), "array 'x_val' is not one of"),
    "x-y-mismatch": (_with(y_train=np.arange(11) % 3), "x_train holds 12 images but y_train 11"),
    "float-labels": (_with(y_train=np.zeros(12)), "y_train has dtype float64; labels must be integers"),
    "negative-label": (_with(y_test=np.array([0, 1, -1, 2, 0, 1])), "y_test holds label -1; labels must be >= 0"),
    "huge-label": (_with(y_test=np.array([0, 1, 10**9, 2, 0, 1])), "y_test holds label 1000000000; labels must be class indices"),
    "labels-2d": (_with(y_train=np.zeros((12, 1), int)), "y_train has shape (12, 1); labels must be one per image"),
    "empty-train": (_with(x_train=np.zeros((0, 12, 12, 3), np.uint8), y_train=np.zeros(0, int)), "x_train holds no images"),
    "empty-test": (_with(x_test=np.zeros((0, 12, 12, 3), np.uint8), y_test=np.zeros(0, int)), "x_test holds no images"),
    "nan-pixels": (_with(x_test=np.full((6, 12, 12, 3), np.nan, np.float32)), "x_test has 2592 NaN or infinite pixels"),
    "inf-pixel": (_with(x_train=np.where(np.arange(12)[:, None, None, None] == 3, np.inf, np.zeros((12, 12, 12, 3)))), "x_train has 432 NaN or infinite pixels"),
    "rank-2": (_with(x_train=np.zeros((12, 144), np.uint8)), "x_train has shape (12, 144); images must be N x H x W or N x H x W x C"),
    "rank-5": (_with(x_train=np.zeros((12, 2, 2, 2, 2), np.uint8)), "x_train has shape (12, 2, 2, 2, 2)"),
    "int-pixels": (_with(x_train=np.zeros((12, 12, 12, 3), np.int64)), "x_train has dtype int64; images must be uint8"),
    "shapes-differ": (_with(x_test=np.zeros((6, 12, 12), np.uint8)), "x_test images are (12, 12), x_train's (12, 12, 3)"),
    "one-class": (_with(y_train=np.zeros(12, int), y_test=np.zeros(6, int)), "every label in y_train and y_test is 0"),
    "object-array": (_with(y_train=_object_array()), "y_train is an object array, which is never loaded"),
}  # fmt: skip


@pytest.mark.parametrize("given, words", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_file_is_one_line_naming_the_file_and_the_problem(tmp_path, given, words):
    path = tmp_path / "mine.npz"
    np.savez(path, **given)
    with pytest.raises(DataError) as caught:
        read_npz(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and words in text
    assert "\n" not in text


def _pickled(path):
    # Unpickling this would run os.system: it must never be unpickled.
    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {path.parent / 'pwned'}",))

    path.write_bytes(pickle.dumps(Exploit()))


NOT_NPZ = {
    "absent": (lambda p: None, "file not found; supply your images with data=npz"),
    "a-folder": (lambda p: p.mkdir(), "a folder, not a regular file"),
    "a-fifo": (lambda p: os.mkfifo(p), "a named pipe (FIFO), not a regular file"),
    "text": (lambda p: p.write_text("x_train,y_train\n"), "not an npz archive"),
    "npy": (lambda p: np.save(open(p, "wb"), np.zeros(3)), "a single .npy array, not an npz archive"),
    "pickle": (_pickled, "a pickle, which is never loaded"),
    "truncated-zip": (lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 20), "not an npz archive"),
}  # fmt: skip


@pytest.mark.parametrize("make, words", NOT_NPZ.values(), ids=NOT_NPZ.keys())
def test_what_is_not_an_npz_is_refused_in_one_line_and_never_unpickled(tmp_path, make, words):
    path = tmp_path / "mine.npz"
    make(path)
    with pytest.raises(DataError) as caught:
        read_npz(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and words in text
    assert "\n" not in text
    assert not (tmp_path / "pwned").exists()


def test_a_corrupt_array_inside_names_the_array(tmp_path):
    path = tmp_path / "mine.npz"
    np.savez(path, **_with(x_test=None))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("x_test.npy", b"\x93NUMPY but not an array header")
    with pytest.raises(DataError) as caught:
        read_npz(path)
    assert str(caught.value).startswith(f"{path}: x_test unreadable (")
