"""Real file-system faults for tests: a small tmpfs that fills up (and is resized to
free space), a folder made read-only by remounting it (chmod does not stop root, who
runs CI). Tests skip, saying why, where mounting is not allowed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


@contextmanager
def tmpfs(folder: Path, size: str = "16m") -> Iterator[Path]:
    """`folder` as a fresh tmpfs of `size` for the block; unmounted after it."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def resize(folder: Path, size: str) -> None:
    """Space freed (or taken) on a mounted tmpfs."""
    remount(folder, f"size={size}")
