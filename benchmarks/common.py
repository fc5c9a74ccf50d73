"""Helpers shared by the benchmarks: where the data is, how to start the entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from experiments.processes import child_environment

PROJECT_DIR = Path(__file__).resolve().parents[1]


def data_dir() -> Path | None:
    """FASHION_MNIST_DIR, else the shared copy beside the project; None if neither has it."""
    for candidate in (
        os.environ.get("FASHION_MNIST_DIR"),
        PROJECT_DIR.parent / "shared/data/fashion-mnist",
    ):
        if candidate and (Path(candidate) / "train-images-idx3-ubyte.gz").is_file():
            return Path(candidate)
    return None


def python(*args: str, cwd: Path, timeout: int = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=child_environment(), capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def print_ratio(label: str, ratio: float, target: float) -> None:
    """`label: ratio (meets|misses the target <= target)`, aligned with the times above."""
    verdict = "meets" if ratio <= target else "misses"
    print(f"{label + ':':<38}{ratio:6.2f} ({verdict} the target <= {target})")
