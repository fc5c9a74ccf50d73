"""CIFAR-10's binary version on files written here in its exact format: the pixel layout
(RGB planes to HxWxC), the checks of each file, the splits. No TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.cifar10 import TRAIN_FILES, make_cifar10, random_images, record, write_batch
from helpers.compose import typed

from experiments.data import load
from experiments.images.base import DataError
from experiments.images.cifar10 import HOW_TO_SUPPLY, read_batch, read_folder


def test_each_pixel_keeps_its_red_green_and_blue(tmp_path):
    red, green, blue = (np.zeros((32, 32), np.uint8) for _ in range(3))
    red[0, 0], green[0, 1], blue[1, 0] = 255, 200, 100
    red[31, 30] = green[31, 30] = blue[31, 30] = 7
    path = tmp_path / "test_batch.bin"
    path.write_bytes(record(3, red, green, blue))
    images, labels = read_batch(path)
    assert images.shape == (1, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == [3]
    image = images[0]
    assert image[0, 0].tolist() == [255, 0, 0]  # row 0, column 0: red
    assert image[0, 1].tolist() == [0, 200, 0]  # row 0, column 1: green
    assert image[1, 0].tolist() == [0, 0, 100]  # row 1, column 0: blue
    assert image[31, 30].tolist() == [7, 7, 7]
    assert int(image.sum()) == 255 + 200 + 100 + 21


def test_a_folder_reads_back_what_was_written_training_batches_in_order(tmp_path):
    written = make_cifar10(tmp_path)
    images = read_folder(tmp_path)
    planes = np.concatenate([written[name][0] for name in TRAIN_FILES])
    np.testing.assert_array_equal(images.x_train, planes.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(
        images.y_train, np.concatenate([written[name][1] for name in TRAIN_FILES])
    )
    np.testing.assert_array_equal(images.x_test, written["test_batch.bin"][0].transpose(0, 2, 3, 1))
    assert images.x_train.shape == (10, 32, 32, 3) and images.x_test.shape == (3, 32, 32, 3)
    assert images.source == str(tmp_path.resolve())


def _fail(path, words):
    with pytest.raises(DataError) as caught:
        read_batch(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and words in text and "\n" not in text
    return text


def test_a_size_that_is_not_whole_records_names_the_file(tmp_path):
    path = write_batch(tmp_path / "data_batch_2.bin", *random_images(2, seed=1))
    path.write_bytes(path.read_bytes()[:-1])
    text = _fail(path, "6,145 bytes, not a whole number of 3,073-byte records")
    assert text.endswith(HOW_TO_SUPPLY)


def test_a_label_above_9_names_the_file_and_the_record(tmp_path):
    planes, _ = random_images(3, seed=1)
    path = write_batch(tmp_path / "data_batch_1.bin", planes, np.array([0, 9, 12]))
    _fail(path, "label 12 in record 2, outside 0-9")


def test_a_missing_file_names_it(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "data_batch_3.bin").unlink()
    with pytest.raises(DataError) as caught:
        read_folder(tmp_path)
    assert str(caught.value) == f"{tmp_path / 'data_batch_3.bin'}: file not found; {HOW_TO_SUPPLY}"


def test_the_pickled_python_version_is_never_read(tmp_path):
    """A folder of the python version (data_batch_1, no .bin) is named, not unpickled."""
    (tmp_path / "data_batch_1").write_bytes(b"\x80\x04 a pickle that must not be loaded")
    with pytest.raises(DataError) as caught:
        read_folder(tmp_path)
    text = str(caught.value)
    assert text.startswith(f"{tmp_path / 'data_batch_1.bin'}: file not found; data_batch_1")
    assert "pickled python version, which is never read" in text


def test_load_gives_float_hwc_splits_the_first_images_and_the_folder(tmp_path):
    unpacked = tmp_path / "cifar-10-batches-bin"  # as the official archive unpacks
    written = make_cifar10(unpacked, per_batch=3, n_test=4)
    splits = load(
        typed(
            "data=cifar10", f"data.dir={tmp_path}", "data.validation_size=2",
            "data.train_size=7", "data.test_size=3",
        ).data
    )  # fmt: skip
    assert splits.input_shape == (32, 32, 3)
    assert (len(splits.x_val), len(splits.x_train), len(splits.x_test)) == (2, 5, 3)
    assert splits.x_train.dtype == np.float32 and splits.x_train.max() <= 1.0
    first = written["data_batch_1.bin"][0][0].transpose(1, 2, 0)  # the first image validates
    np.testing.assert_allclose(splits.x_val[0], first / 255.0, rtol=1e-6)
    third_batch_first = written["data_batch_3.bin"][0][0].transpose(1, 2, 0)  # image 7 of 15
    np.testing.assert_allclose(splits.x_train[-1], third_batch_first / 255.0, rtol=1e-6)
    assert splits.folder == str(unpacked.resolve())
