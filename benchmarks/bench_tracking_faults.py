"""Time from the command to the one-line error when the tracking server is unreachable
(target: within 10 s; MLflow's own retries would take minutes): a run and a multirun
against a closed loopback port (refused at once), and a run against a port that accepts
connections but never answers (the check's timeout)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

from experiments.processes import child_environment

TARGET_S = 10.0


def time_to_error(uri: str, *extra: str) -> tuple[float, str]:
    with tempfile.TemporaryDirectory(prefix="bench_faults_") as folder:
        command = [sys.executable, "-m", "experiments.train", *extra, f"tracking.uri={uri}"]
        command.append("data=synthetic")
        started = time.perf_counter()
        done = subprocess.run(
            command, cwd=folder, env=child_environment(), capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    return elapsed, (lines[-1] if lines else f"(no error line; exit {done.returncode})")


def main() -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average {load}; target: the error within {TARGET_S:.0f} s")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_uri = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent_uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        cases = [
            ("run, closed port", closed_uri, ()),
            ("multirun, closed port", closed_uri, ("-m", "training.seed=1,2")),
            ("run, server that never answers", silent_uri, ()),
        ]
        for name, uri, extra in cases:
            seconds, line = time_to_error(uri, *extra)
            print(f"{name:32s} {seconds:5.1f} s  {line[:90]}")


if __name__ == "__main__":
    main()
