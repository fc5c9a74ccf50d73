"""The 1cycle learning-rate schedule (Smith 2018), which Keras does not have.

Its shape over a run of `total_steps` steps: linear from `start_rate` up to `max_rate`
over the first half of the cycle, linear back down to `start_rate` over the second half,
then linear down to `final_rate` over the last `annealing_steps` steps (the cycle is
what comes before them); `final_rate` after the run. Smith also cycles the momentum
the other way; this schedule moves the rate only, as the chapter's own implementation
does. Registered, so an optimizer saved with it in a `.keras` file loads again.
"""

from __future__ import annotations

from itertools import pairwise

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="gradient_lab")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(
        self,
        start_rate: float,
        max_rate: float,
        final_rate: float,
        total_steps: int,
        annealing_steps: int,
    ):
        self.start_rate = float(start_rate)
        self.max_rate = float(max_rate)
        self.final_rate = float(final_rate)
        self.total_steps = int(total_steps)
        self.annealing_steps = int(annealing_steps)

    def corners(self) -> list[tuple[float, float]]:
        """(step, rate) where the straight segments meet."""
        cycle = self.total_steps - self.annealing_steps
        return [
            (0.0, self.start_rate),
            (cycle / 2, self.max_rate),
            (float(cycle), self.start_rate),
            (float(self.total_steps), self.final_rate),
        ]

    def __call__(self, step):
        step = ops.cast(step, "float32")
        corners = self.corners()
        rate = ops.convert_to_tensor(self.final_rate, "float32")
        # From the last segment back to the first, each one taking the steps before its end.
        for (x0, y0), (x1, y1) in reversed(list(pairwise(corners))):
            slope = (y1 - y0) / max(x1 - x0, 1.0)
            rate = ops.where(step < x1, y0 + slope * (step - x0), rate)
        return rate

    def get_config(self) -> dict:
        return {
            "start_rate": self.start_rate,
            "max_rate": self.max_rate,
            "final_rate": self.final_rate,
            "total_steps": self.total_steps,
            "annealing_steps": self.annealing_steps,
        }
