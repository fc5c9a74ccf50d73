"""`python -m experiments`: the lab's commands, one line each (what `pip install` puts on
the PATH; each also runs as `python -m <module>`)."""

from __future__ import annotations

import sys

# (command, module, what it does): the [project.scripts] of pyproject.toml, in order.
COMMANDS = (
    ("gradlab-train", "experiments.train", "train one configuration, or sweep many (-m)"),
    ("gradlab-study", "experiments.sweeps.study", "every study of the chapter as one sweep"),
    ("gradlab-report", "experiments.report", "the comparison page of recorded runs"),
    ("gradlab-ui", "experiments.tracking.ui", "the MLflow UI on this folder's runs"),
    ("gradlab-server", "experiments.tracking.server", "a shared MLflow tracking server"),
    ("gradlab-sync", "experiments.sync", "send runs kept on disk to their store"),
)


def main() -> int:
    print("gradient lab: remedies for vanishing and exploding gradients, run and recorded.\n")
    print("commands (each takes --help):")
    width = max(len(name) for name, _, _ in COMMANDS)
    for name, module, what in COMMANDS:
        print(f"  {name:<{width}}  {what}  (python -m {module})")
    print(
        "\nexamples:\n"
        "  gradlab-train activation=prelu\n"
        "  gradlab-train -m activation=relu,elu,selu normalization=none,batchnorm\n"
        "  gradlab-study --epochs 2\n"
        'tab completion for gradlab-train: eval "$(gradlab-train -sc install=bash)"'
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
