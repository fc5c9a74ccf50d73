"""What an optimizing sweeper (hparams_search=optuna) sees of a job: its final
val_accuracy, or, when training exploded, a value below any accuracy, so the trial
counts as the worst one instead of aborting the search (Optuna fails a trial that
returns None or NaN, and stops the search when too many fail).

A search of several objectives (`hydra.sweeper.objectives`) gets a mapping instead: each
objective's final value as the run logged it (`epoch_seconds`, `test_accuracy`,
`param_count`, ...), `val_accuracy` as above. A run that exploded gives no value for the
other objectives, so its trial fails rather than joining the Pareto front for being
quick to blow up."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

WORST_SCORE = -1.0
MONITOR = "val_accuracy"
# The search's objectives when it names none: one, as before there could be several.
DEFAULT_OBJECTIVES = (MONITOR,)


def objective(val_accuracy: float | None) -> float:
    if val_accuracy is None or not math.isfinite(val_accuracy):
        return WORST_SCORE
    return float(val_accuracy)


def objectives(
    val_accuracy: float | None, final: Mapping[str, float], wanted: Sequence[str]
) -> dict[str, float | None]:
    exploded = val_accuracy is None or not math.isfinite(val_accuracy)
    return {
        name: objective(val_accuracy)
        if name == MONITOR
        else (None if exploded else final.get(name))
        for name in wanted
    }
