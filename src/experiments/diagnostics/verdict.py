"""A run's gradients in one word, searchable in the MLflow UI: the `gradient_health` tag.

    healthy     no condition below held at any probe step
    vanishing   depth_ratio < 0.1: the first hidden block gets less than a tenth of the
                gradient signal (std of dL/ds) of the last one
    exploding   depth_ratio > 10, or training stopped on a non-finite gradient while the
                loss was still finite
    dying       ReLU-like units: 80% or more of a layer's units have s <= 0 on every
                probe image (they pass no gradient)
    saturating  sigmoid/tanh: 50% or more of a layer's outputs lie in the flat tails
                (|a - 0.5| > 0.49 for sigmoid, |a| > 0.98 for tanh)
    diverged    training stopped on a non-finite loss
    unknown     no diagnostics were recorded and the loss stayed finite: nothing to judge

A condition counts when it lasted: it held at the last probe step or at more than half
of them; one that passed is named in the reason only. When several count, the most
severe wins, in the order above from `diverged` down (see `SEVERITY`);
`gradient_health_epoch` is the first probe step at which it held and
`gradient_health_layer` the hidden block it names. The thresholds (`THRESHOLDS`) are
grounded in the paper tests (tests/diagnostics/test_papers.py; docs/diagnostics.md gives
the measured values). NumPy only: the report and the run lifecycle read it without
TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from experiments.core import names
from experiments.diagnostics.record import DiagnosticsRecord

DIVERGED = "diverged"
EXPLODING = "exploding"
VANISHING = "vanishing"
DYING = "dying"
SATURATING = "saturating"
HEALTHY = "healthy"
UNKNOWN = "unknown"
# Most severe first: a run that vanished and then diverged is `diverged`.
SEVERITY = (DIVERGED, EXPLODING, VANISHING, DYING, SATURATING, HEALTHY, UNKNOWN)
REASON_CHARS = 500


@dataclass(frozen=True)
class Thresholds:
    """Measured at initialization (seeds 0-4, `python -m benchmarks.run_all verdict`):
    depth_ratio 3.9e-4 to 4.1e-4 for Glorot & Bengio's 5-layer sigmoid net with the
    standard init, 2.6e-5 to 6.1e-5 for a 30-layer ReLU net with Glorot init; 0.61 to
    1.7 for He-initialized 5- and 30-layer ReLU nets and 0.18 to 2.0 for the 100-layer
    one, whose layers have up to 58% dead units (30 layers: up to 46%)."""

    vanishing_ratio: float = 0.1
    exploding_ratio: float = 10.0
    dead_frac: float = 0.8
    saturated_frac: float = 0.5


THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Verdict:
    health: str
    reason: str
    layer: str = ""
    epoch: int | None = None

    def tags(self) -> dict[str, str]:
        """The four tags; layer and epoch are empty when the verdict names none."""
        return {
            names.HEALTH_TAG: self.health,
            names.HEALTH_LAYER_TAG: self.layer,
            names.HEALTH_EPOCH_TAG: "" if self.epoch is None else str(self.epoch),
            names.HEALTH_REASON_TAG: self.reason[:REASON_CHARS],
        }


def unknown(reason: str) -> Verdict:
    return Verdict(UNKNOWN, reason)


def judge(
    record: DiagnosticsRecord | None,
    failed_epoch: int | None = None,
    failure_reason: str | None = None,
    thresholds: Thresholds = THRESHOLDS,
) -> Verdict:
    """The verdict on one run from its diagnostics (None: none recorded) and, when
    training stopped on a non-finite value, the epoch and reason it stopped with.

    A condition is the run's when it lasted: it held at the last probe step or at more
    than half of them. One that passed (the 100-layer SELU net's gradient, 26 times larger
    at the input at initialization and even after one epoch) is named in the reason of
    the verdict the run gets instead."""
    if failed_epoch is not None:
        return _stopped(record, failed_epoch, failure_reason or "non-finite value")
    if record is None or not record.epochs:
        return unknown(
            "no gradient diagnostics recorded (diagnostics.enabled=false) and the loss "
            "stayed finite"
        )
    steps = len(record.epochs)
    found = _conditions(record, thresholds)
    lasting = {
        health: held
        for health, held in found.items()
        if held.epochs[-1] == record.epochs[-1] or 2 * len(held.epochs) > steps
    }
    passed = [held for health, held in found.items() if health not in lasting]
    for health in SEVERITY:
        if health in lasting:
            held = lasting[health]
            reason = f"{held.first.reason}; held at {len(held.epochs)} of {steps} probe steps"
            return replace(held.first, reason=_with_passed(reason, passed))
    return _healthy(record, thresholds, passed)


@dataclass
class _Held:
    """A condition's verdict at the first probe step where it held, and every such step."""

    first: Verdict
    epochs: list[int]


def _with_passed(reason: str, passed: list[_Held]) -> str:
    for held in passed:
        reason += (
            f"; passed: {held.first.health} at {len(held.epochs)} probe step"
            f"{'s' if len(held.epochs) > 1 else ''} ({held.first.reason})"
        )
    return reason


def _stopped(record: DiagnosticsRecord | None, epoch: int, reason: str) -> Verdict:
    failure = record.failure if record is not None else None
    layer = ""
    if failure and failure.get("layer"):
        layer = record.layer_names[failure["layer"] - 1]
    if failure and failure.get("where") == "backward":
        return Verdict(EXPLODING, f"{reason} (the loss was still finite)", layer, epoch)
    return Verdict(DIVERGED, reason, layer, epoch)


def _conditions(record: DiagnosticsRecord, t: Thresholds) -> dict[str, _Held]:
    """Each condition with the probe steps at which it held."""
    found: dict[str, _Held] = {}
    signal = record.matrix("grad/signal_std")
    units = (
        (DYING, record.matrix("act/dead_frac"), t.dead_frac,
         "units dead (s <= 0 on every probe image)"),
        (SATURATING, record.matrix("act/saturated_frac"), t.saturated_frac,
         "outputs saturated"),
    )  # fmt: skip
    for i, epoch in enumerate(record.epochs):
        held = []
        if signal is not None and i < len(signal):
            held += _depth_conditions(signal[i], record.layer_names, epoch, t)
        for health, matrix, limit, words in units:
            if matrix is not None and i < len(matrix):
                held += _unit_condition(health, matrix[i], limit, words, record, epoch)
        for verdict in held:
            found.setdefault(verdict.health, _Held(verdict, [])).epochs.append(epoch)
    return found


def _unit_condition(
    health: str, row: np.ndarray, limit: float, words: str, record: DiagnosticsRecord, epoch: int
) -> list[Verdict]:
    """Dead or saturated units beyond the limit in some layer: the worst layer."""
    row = np.where(np.isfinite(row), row, -1.0)
    worst = int(np.argmax(row))
    if row[worst] < limit:
        return []
    name = record.layer_names[worst]
    reason = f"{row[worst]:.0%} of {name}'s {words} at epoch {epoch} (threshold {limit:.0%})"
    return [Verdict(health, reason, name, epoch)]


def _depth_conditions(
    signal: np.ndarray, names: list[str], epoch: int, t: Thresholds
) -> list[Verdict]:
    """depth_ratio (first block's signal std over the last's) out of [vanishing,
    exploding]; the layer named is the one nearest the output whose signal is already
    beyond the threshold, relative to the last block's. Steps with non-finite values
    are skipped."""
    last = signal[-1]
    if not (np.all(np.isfinite(signal)) and last > 0):
        return []
    relative = signal / last
    ratio = float(relative[0])
    found = []
    for health, beyond, limit, words in (
        (VANISHING, relative < t.vanishing_ratio, t.vanishing_ratio, "below"),
        (EXPLODING, relative > t.exploding_ratio, t.exploding_ratio, "above"),
    ):
        if not beyond[0]:
            continue
        layer = names[int(np.nonzero(beyond)[0].max())]
        reason = (
            f"depth_ratio {ratio:.2g} at epoch {epoch} (threshold {limit:g}): the gradient "
            f"signal std of {names[0]} is {ratio:.2g} times that of {names[-1]}; "
            f"{layer} is the block nearest the output {words} {limit:g} times it"
        )
        found.append(Verdict(health, reason, layer, epoch))
    return found


def _healthy(record: DiagnosticsRecord, t: Thresholds, passed: list[_Held]) -> Verdict:
    ratios = [r for r in record.depth_ratio if math.isfinite(r)]
    parts = []
    if ratios:
        parts.append(
            f"depth_ratio {min(ratios):.2g} to {max(ratios):.2g} over {len(record.epochs)} "
            f"probe steps (healthy: {t.vanishing_ratio:g} to {t.exploding_ratio:g})"
        )
    for stat, limit, words in (
        ("act/dead_frac", t.dead_frac, "dead units"),
        ("act/saturated_frac", t.saturated_frac, "saturated outputs"),
    ):
        values = record.matrix(stat)
        if values is not None and np.isfinite(values).any():
            parts.append(f"at most {np.nanmax(values):.0%} {words} in a layer (< {limit:.0%})")
    return Verdict(HEALTHY, _with_passed("; ".join(parts) or "no condition held", passed))


def combine(verdicts: dict[str, Verdict]) -> Verdict:
    """One verdict for runs judged apart (a transfer study's phases): the most severe,
    its reason prefixed with the part it came from."""
    if not verdicts:
        return unknown("no part of the run was judged")
    name, worst = min(verdicts.items(), key=lambda item: SEVERITY.index(item[1].health))
    others = ", ".join(f"{n} {v.health}" for n, v in verdicts.items() if n != name)
    reason = f"{name}: {worst.reason}" + (f" (also {others})" if others else "")
    return Verdict(worst.health, reason, worst.layer, worst.epoch)
