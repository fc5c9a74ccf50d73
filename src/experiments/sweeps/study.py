"""The whole chapter as one sweep (`gradlab-study`, `make study`): every study of the
reference notebook as a preset, and the CNN study after them, over one or more seeds,
then one report of them all (on the sweep's parent run and in
<sweep folder>/report/report.html).

    gradlab-study [--epochs N] [--seeds N] [--presets a,b,...] [--sweep-dir DIR]
                  [--experiment NAME] [--dry-run] [hydra overrides ...]

Runs land in experiment `notebook-study`; run it again and the studies that FINISHED
before are skipped. Overrides after the options go to the training entry point as they
are, e.g. `hydra/launcher=joblib hydra.launcher.n_jobs=2`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

# The chapter's studies, in its order (each a file in conf/experiment/).
CHAPTER_PRESETS = (
    "leaky_relu",
    "prelu",
    "elu",
    "selu_deep",
    "relu_deep",
    "batchnorm_after",
    "batchnorm_before",
    "clip_value",
    "clip_norm",
    "transfer",
    "residual_deep",
    "layernorm_deep",
    "one_cycle",
    "momentum",
    "nesterov",
    "adamw",
)
# The CNN study (docs/conv.md): a small CNN, then a 25-layer conv net plain, with BN, with
# GroupNorm and with skips (ResNet); the chapter's page gives them a section of their own.
CNN_PRESETS = ("cnn", "cnn_plain_deep", "cnn_batchnorm_deep", "cnn_groupnorm", "resnet_small")
STUDY_PRESETS = CHAPTER_PRESETS + CNN_PRESETS
FIRST_SEED = 42


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number, 1 or more, is allowed")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradlab-study",
        description="Every study of the chapter as one sweep over presets, then its report.",
    )
    parser.add_argument(
        "--epochs", type=_positive, help="shortens every study (model A's training too)"
    )
    parser.add_argument(
        "--seeds",
        type=_positive,
        default=1,
        help=f"runs every study over seeds {FIRST_SEED}.. in the same sweep (default 1); "
        "the report then compares them with intervals",
    )
    parser.add_argument(
        "--presets",
        default=",".join(STUDY_PRESETS),
        help="comma-separated presets (default: the chapter's, then the CNN study's)",
    )
    parser.add_argument("--sweep-dir", default="multirun/study", help="default: %(default)s")
    parser.add_argument("--experiment", default="notebook-study", help="default: %(default)s")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the training command and stop"
    )
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for every study")
    return parser


def overrides(args: argparse.Namespace) -> list[str]:
    """The training entry point's arguments for the study."""
    line = [
        "-m",
        f"experiment={args.presets}",
        f"tracking.experiment={args.experiment}",
        f"hydra.sweep.dir={args.sweep_dir}",
    ]
    if args.epochs:
        line.append(f"training.epochs={args.epochs}")
    if args.seeds > 1:
        line.append(f"training.seed=range({FIRST_SEED},{FIRST_SEED + args.seeds})")
    return line + list(args.overrides)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    line = overrides(args)
    if args.dry_run:
        print(shlex.join(["gradlab-train", *line]))
        return
    # The study is the training command with these arguments: this process becomes it
    # (its exit code, its signals), and nothing here imports the entry point.
    os.execv(sys.executable, [sys.executable, "-m", "experiments.train", *line])


if __name__ == "__main__":
    main()
