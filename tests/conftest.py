"""Fixtures shared by every test package: an isolated tracking store, a launch folder
for in-process runs of the real entry point, composed configs, and the real data when
it is available. Helpers the tests import live in tests/helpers/."""

from __future__ import annotations

import os
import signal
import sys
import warnings
from pathlib import Path

# absl (TensorFlow's logging) binds its handler to sys.stderr when it is first imported,
# and closes that stream when Hydra reconfigures logging while another stream is
# sys.stderr (a test's capsys): first imported inside a test, it would hold that test's
# stream; imported here, it would hold pytest's own capture and close it under a capsys
# test ("I/O operation on closed file", "lost sys.stderr"). The process's real stderr,
# which absl never closes, is the one stream that outlives every capture.
import absl.logging
import pytest
from helpers.compose import FAST, compose
from helpers.workspace import Workspace

absl.logging.get_absl_handler().python_handler.stream = sys.__stderr__


CTRL_C = (signal.SIGINT, signal.SIGTERM)


def _ctrl_c_reaches_python() -> bool:
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    return signal.getsignal(signal.SIGINT) is not signal.SIG_IGN and not (
        set(CTRL_C) & set(blocked)
    )


@pytest.fixture(autouse=True)
def _ctrl_c_as_python_sets_it(request):
    """Each test starts where Ctrl-C reaches Python: a library run in this process can
    leave SIGINT ignored or blocked, and every child process started after it inherits
    that and never sees Ctrl-C (a sweep under test trained on after its SIGINT). Whoever
    leaves it so is named in the warnings summary."""
    if not _ctrl_c_reaches_python():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, CTRL_C)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if not _ctrl_c_reaches_python():
        warnings.warn(f"{request.node.nodeid} left SIGINT ignored or blocked", stacklevel=1)


@pytest.fixture(autouse=True)
def _isolated_tracking(monkeypatch):
    """No test writes into a store named by the caller's environment."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture
def fresh_workspace(tmp_path) -> Workspace:
    """A launch folder without a store: the first run creates it."""
    return Workspace(tmp_path, fresh=True)


@pytest.fixture(scope="session")
def small_sweep(tmp_path_factory) -> Workspace:
    """One real multirun, shared by the tests that only read what it recorded: two jobs
    (relu, tanh), one epoch each, under one parent run, with the sweep's report."""
    workspace = Workspace(tmp_path_factory.mktemp("small_sweep"))
    assert workspace.train("-m", *FAST, "training.epochs=1", "activation=relu,tanh") == 0
    return workspace


@pytest.fixture(scope="session")
def cfg_train_global():
    """The default training config, composed once (as lightning-hydra-template does)."""
    return compose([])


@pytest.fixture
def cfg_train(cfg_train_global):
    """A copy of the default config that a test may change."""
    return cfg_train_global.copy()


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    folder = os.environ.get("FASHION_MNIST_DIR")
    if not folder or not (Path(folder) / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("real Fashion-MNIST not available: set FASHION_MNIST_DIR to its IDX folder")
    return Path(folder)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    folder = os.environ.get("MNIST_DIR")
    if not folder or not (Path(folder) / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("real MNIST not available: set MNIST_DIR to its IDX folder (mnist-10k)")
    return Path(folder)


def pytest_collection_modifyitems(items):
    """Modules with slow tests (end-to-end sweeps, child processes) first, each module
    kept whole so that its fixtures are made once: pytest-xdist hands out whole modules
    (and xdist groups) in this order, so both workers start on the long sweeps and the
    short tests fill the end, where one worker would otherwise wait for the other's last
    long sweep."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
