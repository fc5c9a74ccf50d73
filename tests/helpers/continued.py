"""Checks of a run continued from its checkpoint against one that never stopped."""

from __future__ import annotations

from collections import Counter

# Measured again by every process: not expected to repeat.
TIMINGS = ("epoch_seconds",)


def metric_histories(client, run) -> dict[str, list[tuple[int, float]]]:
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        for key in run.data.metrics
    }


def assert_same_training(client, continued, straight, straight_client=None) -> None:
    """Every metric at every step once, each equal to the uninterrupted run's (in
    `straight_client`'s store, if another)."""
    ours = metric_histories(client, continued)
    theirs = metric_histories(straight_client or client, straight)
    assert set(ours) == set(theirs)
    for key, values in ours.items():
        steps = Counter(step for step, _ in values)
        assert max(steps.values()) == 1, f"{key} has a step twice: {steps}"
        if key not in TIMINGS:
            # Exact: float32 state restored bit for bit, the same batches, the same ops.
            assert values == theirs[key], key
