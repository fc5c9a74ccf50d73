"""What an optimizing sweeper (hparams_search=optuna) sees of a job: its final
val_accuracy, or, when training exploded, a value below any accuracy, so the trial
counts as the worst one instead of aborting the search (Optuna fails a trial that
returns None or NaN, and stops the search when too many fail)."""

from __future__ import annotations

import math

WORST_SCORE = -1.0


def objective(val_accuracy: float | None) -> float:
    if val_accuracy is None or not math.isfinite(val_accuracy):
        return WORST_SCORE
    return float(val_accuracy)
