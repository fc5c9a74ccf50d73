"""A sweep of presets (`make study`, `-m experiment=a,b,c`) read as the chapter it
reproduces: each preset with its one-line purpose, in the chapter's sections.

A preset's section follows from what it changes (a transfer study, a conv net, a
100-layer net, normalization, clipping, an optimizer or schedule other than plain SGD at a constant
rate; the rest is about initialization and activations), so a new preset finds its
section without a list to keep. The preset is the one factor of such a sweep: every
param that differs between presets follows from it, so configurations are compared by
preset, and only between presets of one section, where the chapter compares them.
"""

from __future__ import annotations

import json
import math
import statistics as stdlib_statistics
from dataclasses import dataclass, field

from experiments.config.presets import purpose as preset_purpose
from experiments.core import names
from experiments.report import statistics
from experiments.report.compare import Factor, finite_positive
from experiments.report.data import RunSummary
from experiments.report.groups import (
    Comparison,
    Group,
    Statistics,
    compare_groups,
    find_groups,
    health_order,
)

PRESET = "experiment"
INIT_AND_ACTIVATIONS = "Initialization and activations"
NORMALIZATION = "Normalization"
CLIPPING = "Gradient clipping"
DEEP = "The 100-layer nets and their remedies"
OPTIMIZERS = "Optimizers and schedules"
TRANSFER = "Transfer learning"
CONV = "Convolutional nets: depth, normalization and skips"
# The chapter's order.
SECTIONS = (INIT_AND_ACTIVATIONS, NORMALIZATION, CLIPPING, DEEP, OPTIMIZERS, CONV, TRANSFER)
# A net this deep belongs with the 100-layer nets, whatever else it changes: the
# remedies there (SELU, skips, LayerNorm) are remedies for depth.
DEEP_LAYERS = 50
OVERRIDES = " Overrides: "


def _choice(run: RunSummary, group: str, default: str) -> str:
    return run.choices.get(group, default)


def hidden_layers(run: RunSummary) -> int:
    """Dense blocks of the run's net: its listed widths plus the repeated ones."""
    try:
        listed = len(json.loads(run.params.get("model.hidden", "[]")))
    except ValueError:
        listed = 0
    repeat = run.params.get("model.repeat", "0")
    return listed + (int(repeat) if repeat.isdigit() else 0)


def section_of(run: RunSummary) -> str:
    """The chapter's section of the preset this run ran."""
    if _choice(run, "transfer", "none") != "none" or run.tags.get(names.TRANSFER_STUDY_TAG):
        return TRANSFER
    if run.params.get("model.kind") == "conv" or _choice(run, "model", "") == "cnn":
        return CONV
    if hidden_layers(run) >= DEEP_LAYERS or _choice(run, "model", "") == "deep":
        return DEEP
    if _choice(run, "normalization", "none") != "none":
        return NORMALIZATION
    if _choice(run, "clipping", "none") != "none":
        return CLIPPING
    momentum = run.params.get("optimizer.momentum", "0")
    if (
        _choice(run, "optimizer", "sgd") != "sgd"
        or _choice(run, "schedule", "constant") != "constant"
        or _as_float(momentum) > 0
    ):
        return OPTIMIZERS
    return INIT_AND_ACTIVATIONS


def _as_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def purpose_of(run: RunSummary) -> str:
    """The preset's one line as its YAML file says it (config.presets, the words of the
    run's description), else as the run's description recorded it, without the command
    line's overrides: a preset renamed or removed since keeps its words."""
    preset = run.choices.get(PRESET, "")
    described = run.tags.get(names.DESCRIPTION_TAG, "").split(OVERRIDES, 1)[0].strip()
    return preset_purpose(preset) or described or f"Preset {preset}."


@dataclass
class Preset:
    """One preset of the sweep: its configuration (over seeds) and, for a transfer study,
    the configurations of its phases (pretrain_A, baseline_B, B_on_A)."""

    name: str
    purpose: str
    section: str
    main: Group
    phases: list[Group] = field(default_factory=list)

    @property
    def runs(self) -> list[RunSummary]:
        return self.main.runs

    @property
    def trained(self) -> Group:
        """The configuration whose training the table and figures show: a transfer
        study's own run trains nothing, its B_on_A phase is the model it is about."""
        by_phase = {g.phase: g for g in self.phases}
        return by_phase.get("B_on_A", self.main)


@dataclass
class Chapter:
    presets: list[Preset]
    statistics: Statistics
    factor: Factor

    def sections(self) -> list[tuple[str, list[Preset]]]:
        """The sections that hold presets, in the chapter's order."""
        return [
            (title, found)
            for title in SECTIONS
            if (found := [p for p in self.presets if p.section == title])
        ]

    def comparisons_of(self, presets: list[Preset]) -> list[Comparison]:
        labels = {g.label for p in presets for g in (p.main, *p.phases)}
        return [c for c in self.statistics.comparisons if c.a in labels and c.b in labels]

    @property
    def seeds(self) -> list[str]:
        found = {s for p in self.presets for g in (p.main, *p.phases) for s in g.seeds}
        return sorted(found, key=_seed_order)


def _is_number(seed: str) -> bool:
    return seed.lstrip("-").isdigit()


def _seed_order(seed: str) -> tuple[int, int, str]:
    return (0, int(seed), "") if _is_number(seed) else (1, 0, seed)


def preset_factor(runs: list[RunSummary]) -> Factor | None:
    """The preset as a factor when every run ran one and they ran at least two."""
    chosen = [run.choices.get(PRESET) for run in runs]
    if not chosen or None in chosen:
        return None
    values = tuple(dict.fromkeys(chosen))
    return Factor(PRESET, "choice", values) if len(values) > 1 else None


def read_chapter(runs: list[RunSummary]) -> Chapter | None:
    """The runs as presets, or None when they are not a sweep of presets: fewer than two
    presets, or a preset run in more than one configuration (a preset crossed with
    another factor is a factorial sweep, whose page compares the factors)."""
    factor = preset_factor(runs)
    if factor is None:
        return None
    groups = find_groups(runs, [factor])
    by_preset: dict[str, list[Group]] = {}
    for group in groups:
        by_preset.setdefault(factor.value(group.runs[0]), []).append(group)
    presets = []
    for name, found in by_preset.items():
        mains = [g for g in found if not g.phase]
        if len(mains) != 1:
            return None
        main = mains[0]
        first = main.runs[0]
        phases = [g for g in found if g.phase]
        presets.append(Preset(name, purpose_of(first), section_of(first), main, phases))
    return Chapter(presets, _section_statistics(groups, presets, factor), factor)


def _section_statistics(groups: list[Group], presets: list[Preset], factor: Factor) -> Statistics:
    """Comparisons between the presets of each section (and each transfer study's B on
    A against its baseline), their p-values adjusted together by Holm's method."""
    found: list[Comparison] = []
    for title in SECTIONS:
        members = [g for p in presets if p.section == title for g in (p.main, *p.phases)]
        found += compare_groups(members, [factor])
    adjusted = statistics.holm([c.test.p_value for c in found])
    for comparison, p in zip(found, adjusted, strict=True):
        comparison.p_adjusted = float(p)
    return Statistics(groups, found)


# --- What the table says of a preset ---


def geometric_mean(values: list[float]) -> float | None:
    logs = [math.log(v) for v in values]
    return math.exp(sum(logs) / len(logs)) if logs else None


def depth_ratio(group: Group, which: str) -> float | None:
    """Over the seeds: a ratio averages on a log scale."""
    return geometric_mean(
        [r for run in group.runs if (r := finite_positive(run.depth_ratio(which))) is not None]
    )


def seconds_per_epoch(group: Group) -> float | None:
    found = [s for run in group.runs if (s := run.seconds_per_epoch) is not None]
    return stdlib_statistics.median(found) if found else None


def health_words(preset: Preset) -> str:
    """`healthy`, or the count of each verdict where the seeds disagree; a transfer
    study's own run carries the verdict of its phases."""
    counts = preset.main.health_counts()
    if len(counts) == 1:
        return next(iter(counts))
    ordered = sorted(counts.items(), key=lambda item: health_order(item[0]))
    return ", ".join(f"{health} {n}" for health, n in ordered)


def epochs_of(run: RunSummary) -> int | None:
    text = run.params.get("training.epochs", "")
    return int(text) if text.isdigit() else (run.epochs or None)


def page_title(chapter: Chapter, experiment: str) -> str:
    """`notebook-study: 16 presets, seed 42, 1 epoch`: what the page is, in one line."""
    seeds = chapter.seeds
    if len(seeds) == 1:
        seed_words = f"seed {seeds[0]}"
    elif seeds and all(_is_number(s) for s in seeds) and _consecutive(seeds):
        seed_words = f"{len(seeds)} seeds ({seeds[0]}-{seeds[-1]})"
    else:
        seed_words = f"{len(seeds)} seeds"
    epochs = sorted({e for p in chapter.presets for run in p.runs if (e := epochs_of(run))})
    if not epochs:
        epoch_words = ""
    elif len(epochs) == 1:
        epoch_words = f", {epochs[0]} epoch{'s' if epochs[0] > 1 else ''}"
    else:
        epoch_words = f", {epochs[0]} to {epochs[-1]} epochs"
    return f"{experiment}: {len(chapter.presets)} presets, {seed_words}{epoch_words}"


def _consecutive(seeds: list[str]) -> bool:
    numbers = [int(s) for s in seeds]
    return numbers == list(range(numbers[0], numbers[0] + len(numbers)))
