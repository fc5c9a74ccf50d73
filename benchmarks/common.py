"""Helpers shared by the benchmarks: where the data is, how to start the entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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


def sweep_then_summarize(
    run_sweep: Callable[[Path, str], None], summarize: Callable[[str], None], seeds: str
) -> None:
    """Runs a benchmark's sweep (in GRADLAB_BENCH_DIR when set, so a finished sweep is
    summarized without training again; else in a scratch folder), then its summary."""
    if data_dir() is None:
        print("skipped: set FASHION_MNIST_DIR to the Fashion-MNIST IDX folder")
        return
    kept = os.environ.get("GRADLAB_BENCH_DIR")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(kept or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        run_sweep(folder, seeds)
        print(f"sweep over seeds {seeds}: {time.perf_counter() - started:.0f} s")
        summarize(f"sqlite:///{folder / 'mlflow.db'}")
