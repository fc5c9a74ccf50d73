"""The environment of a child `python -m experiments...` started from Python (tests,
benchmarks): this checkout's code first, no tracking store inherited from the caller,
quiet TensorFlow."""

from __future__ import annotations

import os

from experiments.paths import CHECKOUT_DIR, PACKAGE_DIR


def child_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(
            None,
            [str(PACKAGE_DIR.parent), str(CHECKOUT_DIR or ""), env.get("PYTHONPATH")],
        )
    )
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update(extra)
    return env
