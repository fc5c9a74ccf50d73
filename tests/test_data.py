"""The IDX reader on files written here, the splits, the synthetic set. No TensorFlow."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers.compose import typed
from helpers.idx import idx_bytes, make_dataset, write_gz

from experiments.data import DataConfig, DataError, load, synthetic
from experiments.images.fashion_mnist import locate_fashion_mnist
from experiments.images.idx import FILES, IMAGES_MAGIC, LABELS_MAGIC, read_idx, read_pair


def test_reads_back_what_was_written(tmp_path):
    arrays = make_dataset(tmp_path)
    images, labels = read_pair(tmp_path / FILES["train"][0], tmp_path / FILES["train"][1])
    assert images.dtype == np.uint8 and images.shape == (60, 28, 28)
    np.testing.assert_array_equal(images, arrays["train"][0])
    np.testing.assert_array_equal(labels, arrays["train"][1])


def test_reads_an_uncompressed_file_too(tmp_path):
    labels = np.arange(7) % 10
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(idx_bytes(LABELS_MAGIC, labels))
    np.testing.assert_array_equal(read_idx(path, LABELS_MAGIC), labels)


def test_wrong_magic_names_the_file(tmp_path):
    path = write_gz(tmp_path / "x.gz", idx_bytes(LABELS_MAGIC, np.zeros(5)))
    with pytest.raises(DataError, match=r"x\.gz: magic number 2049, expected 2051"):
        read_idx(path, IMAGES_MAGIC)


def test_truncated_payload_names_the_file_and_the_sizes(tmp_path):
    full = idx_bytes(IMAGES_MAGIC, np.zeros((4, 28, 28)))
    path = write_gz(tmp_path / "short.gz", full[:-100])
    with pytest.raises(
        DataError, match=r"short\.gz: \d+ bytes but its header \(4, 28, 28\) needs \d+"
    ):
        read_idx(path, IMAGES_MAGIC)


def test_truncated_gzip_stream_names_the_file(tmp_path):
    good = write_gz(tmp_path / "good.gz", idx_bytes(IMAGES_MAGIC, np.zeros((50, 28, 28))))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good.read_bytes()[:40])
    with pytest.raises(DataError, match=r"cut\.gz: unreadable or truncated"):
        read_idx(cut, IMAGES_MAGIC)


def test_not_gzip_at_all_names_the_file(tmp_path):
    path = tmp_path / "garbage.gz"
    path.write_bytes(b"this is not a gzip stream at all")
    with pytest.raises(DataError, match="garbage.gz: unreadable or truncated"):
        read_idx(path, IMAGES_MAGIC)


def test_truncated_header(tmp_path):
    path = write_gz(tmp_path / "tiny.gz", b"\x00\x00")
    with pytest.raises(DataError, match="tiny.gz: truncated header"):
        read_idx(path, IMAGES_MAGIC)


def test_images_and_labels_must_agree(tmp_path):
    images = write_gz(tmp_path / "i.gz", idx_bytes(IMAGES_MAGIC, np.zeros((5, 28, 28))))
    labels = write_gz(tmp_path / "l.gz", idx_bytes(LABELS_MAGIC, np.zeros(4)))
    with pytest.raises(DataError, match="5 images but l.gz has 4 labels"):
        read_pair(images, labels)


def test_image_size_and_label_range_are_checked(tmp_path):
    small = write_gz(tmp_path / "small.gz", idx_bytes(IMAGES_MAGIC, np.zeros((3, 8, 8))))
    labels = write_gz(tmp_path / "l.gz", idx_bytes(LABELS_MAGIC, np.zeros(3)))
    with pytest.raises(DataError, match=r"small.gz: images are \(8, 8\), expected \(28, 28\)"):
        read_pair(small, labels)
    images = write_gz(tmp_path / "i.gz", idx_bytes(IMAGES_MAGIC, np.zeros((3, 28, 28))))
    bad = write_gz(tmp_path / "bad.gz", idx_bytes(LABELS_MAGIC, np.array([1, 2, 12])))
    with pytest.raises(DataError, match="bad.gz: label 12 outside 0-9"):
        read_pair(images, bad)


def test_missing_file_message_names_the_file_and_the_ways_to_supply_data(tmp_path):
    with pytest.raises(DataError) as caught:
        load(data_cfg(f"data.dir={tmp_path}"))
    text = str(caught.value)
    assert str(tmp_path / FILES["train"][0]) in text
    assert (
        "data.dir=" in text
        and "FASHION_MNIST_DIR" in text
        and "~/.keras/datasets/fashion-mnist" in text
    )
    assert "\n" not in text


def test_configured_folder_wins_then_the_keras_cache(tmp_path, monkeypatch):
    configured = tmp_path / "mine"
    configured.mkdir()
    assert locate_fashion_mnist(str(configured)) == configured
    with pytest.raises(DataError, match="is not a folder"):
        locate_fashion_mnist(str(tmp_path / "absent"))
    keras_home = tmp_path / "keras"
    cache = keras_home / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    make_dataset(cache)
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    assert locate_fashion_mnist(None) == cache


def test_splits_follow_the_notebook(tmp_path):
    arrays = make_dataset(tmp_path, n_train=60, n_test=20)
    splits = load(data_cfg(f"data.dir={tmp_path}", "data.validation_size=15"))
    for x in (splits.x_train, splits.x_val, splits.x_test):
        assert x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
        assert 0.0 <= x.min() and x.max() <= 1.0
    assert (len(splits.x_val), len(splits.x_train), len(splits.x_test)) == (15, 45, 20)
    images, labels = arrays["train"]
    np.testing.assert_allclose(
        splits.x_val, images[:15] / 255.0, rtol=1e-6
    )  # first images validate
    np.testing.assert_array_equal(splits.y_train, labels[15:])
    assert splits.input_shape == (28, 28) and splits.num_classes == 10


def test_standardization_uses_the_training_split_statistics(tmp_path):
    make_dataset(tmp_path)
    plain = load(data_cfg(f"data.dir={tmp_path}", "data.validation_size=10"))
    scaled = load(
        data_cfg(f"data.dir={tmp_path}", "data.validation_size=10", "data.standardize=true")
    )
    mean, std = plain.x_train.mean(axis=0), plain.x_train.std(axis=0)
    np.testing.assert_allclose(scaled.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.x_train.std(axis=0), 1.0, atol=1e-4)
    np.testing.assert_allclose(scaled.x_val, (plain.x_val - mean) / std, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(scaled.x_test, (plain.x_test - mean) / std, rtol=1e-4, atol=1e-4)


def test_a_pixel_blank_in_every_training_image_stays_finite(tmp_path):
    make_dataset(tmp_path)
    for split in ("train", "test"):  # blank the top-left pixel everywhere
        path = tmp_path / FILES[split][0]
        images = read_idx(path, IMAGES_MAGIC).copy()
        images[:, 0, 0] = 0
        write_gz(path, idx_bytes(IMAGES_MAGIC, images))
    scaled = load(
        data_cfg(f"data.dir={tmp_path}", "data.validation_size=10", "data.standardize=true")
    )
    assert np.isfinite(scaled.x_train).all() and np.isfinite(scaled.x_test).all()


def data_cfg(*overrides: str) -> DataConfig:
    return typed(*overrides).data


def synthetic_cfg(*overrides: str) -> DataConfig:
    return data_cfg(
        "data=synthetic", "data.validation_size=20", "data.train_size=100",
        "data.test_size=30", "data.image_size=28", "data.num_classes=10", "data.noise=0.35",
        *overrides,
    )  # fmt: skip


def test_synthetic_set_is_deterministic_and_shaped_like_fashion_mnist():
    (xa, ya), (ta, la) = synthetic(synthetic_cfg())
    (xb, yb), _ = synthetic(synthetic_cfg())
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert xa.dtype == np.uint8 and xa.shape == (100, 28, 28) and ta.shape == (30, 28, 28)
    assert set(np.unique(ya)) == set(range(10)) and set(np.unique(la)) == set(range(10))


def test_synthetic_classes_are_separable_by_their_means():
    """Learnable: a nearest-class-mean classifier fit on the training split beats chance
    by far on the test split, so a failure to learn in a test is the model's fault."""
    splits = load(
        synthetic_cfg("data.train_size=600", "data.test_size=200", "data.validation_size=100")
    )
    x, y = splits.x_train.reshape(len(splits.x_train), -1), splits.y_train
    means = np.stack([x[y == c].mean(axis=0) for c in range(10)])
    xt = splits.x_test.reshape(len(splits.x_test), -1)
    predicted = np.argmin(((xt[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (predicted == splits.y_test).mean() > 0.8


def test_a_failed_download_says_why(tmp_path, monkeypatch):
    """The message said only "(Exception)": it now carries the network's own words."""
    import socket

    from experiments.images import fashion_mnist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens there once the socket is closed
    monkeypatch.setattr(fashion_mnist, "DOWNLOAD_ORIGIN", f"http://127.0.0.1:{closed}/")
    with pytest.raises(DataError) as caught:
        fashion_mnist._download(tmp_path / "datasets" / "fashion-mnist")
    text = str(caught.value)
    assert "the download failed (" in text and "(Exception)" not in text
    assert "refused" in text.lower() or "fetch failure" in text.lower()
    assert "\n" not in text


@pytest.mark.parametrize(
    "n_train, n_test, overrides, file, words",
    [
        # 100 images cannot give 5,000 to validation: the digest of the empty training
        # split failed with a memoryview TypeError, after TensorFlow's start-up.
        (100, 20, [], "train", "100 training images, and data.validation_size=5000"),
        (100, 20, ["data.validation_size=100"], "train", "it must be below 100"),
        (100, 0, ["data.validation_size=10"], "test", "no test images, at least one"),
    ],
    ids=["validation-over-train", "validation-equals-train", "no-test-images"],
)
def test_a_split_left_empty_by_the_files_names_the_file_and_what_is_allowed(
    tmp_path, n_train, n_test, overrides, file, words
):
    make_dataset(tmp_path, n_train=n_train, n_test=n_test)
    with pytest.raises(DataError) as caught:
        load(data_cfg(f"data.dir={tmp_path}", *overrides))
    text = str(caught.value)
    assert text.startswith(f"{tmp_path / FILES[file][0]}: ") and words in text
    assert "\n" not in text


def test_a_split_left_empty_ends_the_run_failed_with_exit_1(workspace):
    """The run went on to the dataset digest, which failed with a memoryview TypeError."""
    folder = workspace.folder / "small"
    folder.mkdir()
    make_dataset(folder, n_train=100, n_test=20)
    assert workspace.train(f"data.dir={folder}", "diagnostics.plots=false") == 1
    (run,) = workspace.runs()
    assert run.info.status == "FAILED"
    assert run.data.tags["failure_reason"].startswith(
        f"{folder / FILES['train'][0]}: 100 training images, and data.validation_size=5000"
    )


def _read_with_deadline(folder: Path, seconds: float) -> BaseException | None:
    """load() in a thread: what it raised, or None if it did not end in time (it is then
    given a writer's end-of-file, so that the thread ends)."""
    errors: list[BaseException] = []

    def read():
        try:
            load(data_cfg(f"data.dir={folder}", "data.validation_size=10"))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            errors.append(e)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        fifo = folder / FILES["train"][0]
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        return None
    return errors[0] if errors else AssertionError("load() raised nothing")


@pytest.mark.parametrize(
    "make, kind",
    [(os.mkfifo, "a named pipe (FIFO)"), (os.mkdir, "a folder")],
    ids=["fifo", "folder"],
)
def test_what_is_not_a_regular_file_is_refused_at_once_in_one_line(tmp_path, make, kind):
    """A FIFO named like an IDX file blocked the run for ever in gzip.open."""
    make_dataset(tmp_path)
    special = tmp_path / FILES["train"][0]
    special.unlink()
    make(special)
    error = _read_with_deadline(tmp_path, seconds=10)
    assert error is not None, f"reading {special} did not end"
    assert isinstance(error, DataError)
    assert str(error).startswith(f"{special}: {kind}, not a regular file; supply Fashion-MNIST")
    assert "\n" not in str(error)


def test_mnist_is_read_by_the_same_reader_and_says_how_to_supply_it(tmp_path):
    arrays = make_dataset(tmp_path, n_train=40, n_test=10)
    splits = load(data_cfg("data=mnist", f"data.dir={tmp_path}", "data.validation_size=10"))
    np.testing.assert_array_equal(splits.y_test, arrays["test"][1])
    assert splits.input_shape == (28, 28) and splits.folder == str(tmp_path.resolve())
    (tmp_path / FILES["test"][1]).unlink()
    with pytest.raises(DataError) as caught:
        load(data_cfg("data=mnist", f"data.dir={tmp_path}", "data.validation_size=10"))
    assert str(caught.value).startswith(f"{tmp_path / FILES['test'][1]}: file not found; ")
    assert "supply MNIST with data=mnist data.dir=<folder> or MNIST_DIR" in str(caught.value)


def test_the_real_mnist_subset_loads_with_its_sizes(mnist_dir):
    """The shared mnist-10k: 8,000 training and 2,000 test digits, all ten classes."""
    splits = load(data_cfg("data=mnist", f"data.dir={mnist_dir}", "data.validation_size=1000"))
    assert (len(splits.x_val), len(splits.x_train), len(splits.x_test)) == (1000, 7000, 2000)
    assert splits.input_shape == (28, 28) and splits.num_classes == 10
    assert set(np.unique(splits.y_train)) == set(range(10))
    assert 0.0 <= splits.x_train.min() and splits.x_train.max() == 1.0


def test_train_and_test_size_take_the_first_images_of_the_files(tmp_path):
    arrays = make_dataset(tmp_path, n_train=60, n_test=20)
    splits = load(
        data_cfg(
            f"data.dir={tmp_path}", "data.validation_size=5", "data.train_size=25",
            "data.test_size=7",
        )
    )  # fmt: skip
    assert (len(splits.x_val), len(splits.x_train), len(splits.x_test)) == (5, 20, 7)
    np.testing.assert_array_equal(splits.y_train, arrays["train"][1][5:25])
    np.testing.assert_array_equal(splits.y_test, arrays["test"][1][:7])
    with pytest.raises(DataError) as caught:
        load(data_cfg(f"data.dir={tmp_path}", "data.validation_size=5", "data.test_size=21"))
    assert str(caught.value) == (
        f"{tmp_path / FILES['test'][0]}: 20 test images, fewer than data.test_size=21 asks "
        "for: it must be at most 20, or null for all of them"
    )


def write_npz(path: Path, shape=(12, 12, 3), classes: int = 3, dtype=np.uint8, **changes) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": (rng.random((30, *shape)) * 255).astype(dtype),
        "y_train": np.arange(30) % classes,
        "x_test": (rng.random((9, *shape)) * 255).astype(dtype),
        "y_test": np.arange(9) % classes,
    }
    np.savez(path, **(arrays | changes))
    return path


def test_npz_images_carry_their_shape_classes_and_scaling(tmp_path):
    path = write_npz(tmp_path / "mine.npz")
    splits = load(data_cfg("data=npz", f"data.path={path}", "data.validation_size=6"))
    assert splits.input_shape == (12, 12, 3) and splits.num_classes == 3
    assert (len(splits.x_val), len(splits.x_train), len(splits.x_test)) == (6, 24, 9)
    raw = np.load(path)
    np.testing.assert_allclose(splits.x_val, raw["x_train"][:6] / 255.0, rtol=1e-6)
    assert splits.folder == str(path.resolve())
    # Float images are the user's own scale: taken as they are, only made float32.
    floats = write_npz(tmp_path / "f.npz", shape=(5, 7), dtype=np.float64, classes=4)
    splits = load(data_cfg("data=npz", f"data.path={floats}", "data.validation_size=6"))
    np.testing.assert_allclose(splits.x_test, np.load(floats)["x_test"], rtol=1e-6)
    assert splits.x_test.max() > 1.0 and splits.input_shape == (5, 7)
    assert splits.num_classes == 4
    scaled = load(
        data_cfg("data=npz", f"data.path={path}", "data.validation_size=6", "data.standardize=true")
    )
    np.testing.assert_allclose(scaled.x_train.mean(axis=0), 0.0, atol=1e-5)


def test_an_npz_run_trains_records_its_file_and_a_malformed_one_fails_in_one_line(
    workspace, capsys
):
    path = write_npz(workspace.folder / "mine.npz")
    fast = ["training.epochs=1", "training.verbose=0", "diagnostics.plots=false"]
    assert workspace.train("data=npz", f"data.path={path}", "data.validation_size=6", *fast) == 0
    (run,) = workspace.runs()
    assert run.info.status == "FINISHED" and run.data.params["data.path"] == str(path)
    inputs = run.inputs.dataset_inputs
    assert {i.dataset.name for i in inputs} == {"npz-train", "npz-val", "npz-test"}
    assert all(str(path.resolve()) in i.dataset.source for i in inputs)
    assert '"features_shape": [24, 12, 12, 3]' in next(
        i.dataset.profile for i in inputs if i.dataset.name == "npz-train"
    )
    capsys.readouterr()

    broken = write_npz(
        workspace.folder / "broken.npz", y_test=np.array([0, 1, -2, 0, 1, 2, 0, 1, 2])
    )
    assert workspace.train("data=npz", f"data.path={broken}", "data.validation_size=6", *fast) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"error: {broken}: y_test holds label -2; labels must be >= 0"
    statuses = sorted(r.info.status for r in workspace.runs())
    assert statuses == ["FAILED", "FINISHED"]  # the malformed file finished nothing
