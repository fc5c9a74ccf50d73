"""What every reader of image files shares: the one-line DataError, a file opened only if
it is a regular one, and the set as read (before the splits).

A reader names the file and the problem in its message, then says how to supply the
set (its `hint`): a user who pointed data.dir at the wrong folder learns which file is
wrong and what was expected there, in one line.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np


class DataError(RuntimeError):
    """Data that cannot be found or read; the message names the file."""


def data_error(path: Path | str, problem: str, hint: str = "") -> DataError:
    return DataError(f"{path}: {problem}; {hint}" if hint else f"{path}: {problem}")


@dataclass(frozen=True)
class ImageSet:
    """A data set as its files hold it: images N x H x W or N x H x W x C (uint8, or
    float as the user's file gives them) and integer labels, before any subset or split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    # The folder or file read, the source of the run's MLflow datasets; None when generated.
    source: str | None
    # What a message about a split's size names: the file(s) the split came from.
    train_from: str
    test_from: str
    hint: str = ""


# What stat says of a file that is not a regular one, in words.
_KINDS = {
    "d": "a folder",
    "p": "a named pipe (FIFO)",
    "c": "a character device",
    "b": "a block device",
    "s": "a socket",
}


def open_regular(path: Path, hint: str = "") -> BinaryIO:
    """The file opened for reading, if it is a regular one. Opened without blocking and
    checked on the open descriptor: a FIFO named like a data file would otherwise wait
    forever for a writer, and a check before opening could be raced."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise data_error(path, "file not found", hint) from None
    except OSError as e:
        raise data_error(path, f"cannot be opened ({e.strerror})", hint) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.filemode(mode)[0], "a special file")
            raise data_error(path, f"{kind}, not a regular file", hint)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path, hint: str = "") -> bytes:
    with open_regular(path, hint) as f:
        try:
            return f.read()
        except OSError as e:
            raise data_error(path, f"unreadable ({e})", hint) from None


def configured_folder(configured: str, key: str, hint: str) -> Path:
    """The folder a data set's `data.dir` names (`key` says how it was given)."""
    folder = Path(configured).expanduser()
    if not folder.is_dir():
        raise data_error(folder, f"{key} is not a folder", hint)
    return folder  # missing files there are reported by name when read
