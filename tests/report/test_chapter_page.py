"""The page of a sweep of presets (`make study`): a title that says what ran, a row per
preset with its purpose, a figure per section of the chapter, claims only between
presets of one section, the differing params collapsed and in runs.csv."""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path

import helpers.preset_runs as presets_sweep
import pytest
from helpers.compose import compose

from experiments.config.presets import purpose
from experiments.report import build as report
from experiments.report import chapter
from experiments.report.compare import two_factor_matrix
from experiments.report.data import RunSummary, select_runs
from experiments.report.statistics import holm

pytestmark = pytest.mark.xdist_group("report.test_chapter_page")
PRESETS = list(presets_sweep.PRESETS)


def visible_text(page: str) -> str:
    """The page's text as a reader sees it (tags and the embedded images left out)."""
    return html.unescape(
        re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", page, flags=re.S))
    )


def build(folder: Path, seeds: int) -> report.Report:
    sweep = presets_sweep.make_preset_sweep(folder / "store", seeds=seeds)
    selection = select_runs(sweep.client(), parent_run_id=sweep.parent_id)
    return report.build_report(selection, folder / "report", title="Sweep <the override string>")


@pytest.fixture(scope="module")
def one_seed(tmp_path_factory) -> report.Report:
    return build(tmp_path_factory.mktemp("one_seed"), seeds=1)


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory) -> report.Report:
    return build(tmp_path_factory.mktemp("three_seeds"), seeds=3)


def rows(page: str, css: str) -> list[str]:
    return re.findall(rf'<tr class="[^"]*" {css}="([^"]+)"', page)


def test_the_title_says_what_ran_and_each_preset_has_its_row_and_purpose(one_seed):
    page = one_seed.html.read_text()
    title = "notebook-study: 5 presets, seed 42, 2 epochs"
    assert f"<title>{title}</title>" in page and f"<h1>{title}</h1>" in page
    # One row per preset, in the chapter's order of sections, each with its YAML's words.
    assert rows(page, "data-preset") == PRESETS
    sections = re.findall(r'<tr class="section"><th colspan="8"><a href="#[^"]+">([^<]+)<', page)
    assert sections == list(dict.fromkeys(presets_sweep.SECTIONS.values()))
    for preset in PRESETS:
        row = page.split(f'data-preset="{preset}">', 1)[1].split("</tr>", 1)[0]
        assert html.escape(purpose(preset)) in row
    leaky = page.split('data-preset="leaky_relu">', 1)[1].split("</tr>", 1)[0]
    val = presets_sweep.val_accuracy("leaky_relu", 42)
    assert f"{val:.4f}<br><small>1 seed</small>" in leaky  # val_accuracy
    assert f"{val - 0.01:.4f}<br><small>1 seed</small>" in leaky  # test_accuracy
    assert "healthy" in leaky and "2.5" in leaky  # verdict, median seconds per epoch
    # The transfer study's row: B on A's numbers, and what the study's own run holds.
    transfer = page.split('data-preset="transfer">', 1)[1].split("</tr>", 1)[0]
    b_on_a = presets_sweep.val_accuracy("transfer", 42) - 0.01
    assert f"B on A {b_on_a:.4f}, baseline 0.9200" in transfer


def test_the_page_holds_no_nan_no_empty_matrix_and_no_list_of_params(one_seed):
    page = one_seed.html.read_text()
    text = visible_text(page)
    assert not re.search(r"\bnan\b", text, flags=re.I)
    assert "no run" not in text and not one_seed.matrices
    assert "They differ in" not in text
    assert "One seed per preset: each number is a single run, not a ranking" in text
    # Every differing param is named once, collapsed, and has a column in runs.csv.
    block = page.split("<details><summary>What differs between the presets", 1)[1]
    block = block.split("</details>", 1)[0]
    with one_seed.csv.open() as f:
        header = next(csv.reader(f))
    for key in ("activation.name", "optimizer.momentum", "normalization.name", "transfer.name"):
        assert key in block and key in header


def test_each_section_has_its_figure_of_small_multiples(one_seed):
    sections = list(dict.fromkeys(presets_sweep.SECTIONS.values()))
    drawn = {name: path for name, path in one_seed.figures.items()}
    assert list(drawn) == [chapter_anchor(s) for s in sections]
    for path in drawn.values():
        assert path.read_bytes().startswith(b"\x89PNG")
    page = one_seed.html.read_text()
    for section in sections:
        assert f'<h2 id="{chapter_anchor(section)}">{html.escape(section)}</h2>' in page


def chapter_anchor(section: str) -> str:
    from experiments.report.chapter_page import anchor

    return anchor(section)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_over_seeds_presets_are_compared_within_their_section_only(three_seeds):
    page = three_seeds.html.read_text()
    assert "<h1>notebook-study: 5 presets, 3 seeds (42-44), 2 epochs</h1>" in page
    comparisons = read_csv(three_seeds.comparisons_csv)
    pairs = {(c["a"], c["b"], c["metric"]) for c in comparisons}
    assert pairs == {
        ("leaky_relu", "elu", "val_accuracy"),
        ("leaky_relu", "elu", "test_accuracy"),
        ("transfer · B_on_A", "transfer · baseline_B", "test_accuracy"),
    }
    # One family for Holm's adjustment: every comparison of the page.
    adjusted = holm([float(c["p_value"]) for c in comparisons])
    assert [float(c["p_adjusted"]) for c in comparisons] == pytest.approx(list(adjusted))
    # The claims sit under their section, with intervals and adjusted p-values.
    activations = page.split('id="initialization-and-activations"', 1)[1].split("<h2", 1)[0]
    (row,) = [c for c in comparisons if c["metric"] == "val_accuracy"]
    assert row["significant"] == "True"
    words = f"elu beats leaky_relu on val_accuracy by {-float(row['diff']):.4f}"
    assert words in html.unescape(activations)
    assert "Holm-adjusted" in activations and "95% CI" in activations
    normalization = page.split('id="normalization"', 1)[1].split("<h2", 1)[0]
    assert "Holm-adjusted" not in normalization  # a preset alone in its section
    elu = page.split('data-preset="elu">', 1)[1].split("</tr>", 1)[0]
    mean = sum(presets_sweep.val_accuracy("elu", s) for s in (42, 43, 44)) / 3
    assert f"{mean:.4f}<br><small>" in elu and ", 3 seeds</small>" in elu
    assert not re.search(r"\bnan\b", visible_text(page), flags=re.I)


def summary(run_id: str, choices: dict[str, str]) -> RunSummary:
    return RunSummary(run_id, run_id, "FINISHED", choices, {}, {"val_accuracy": 0.5}, {})


def test_a_preset_crossed_with_another_factor_is_a_factorial_sweep():
    runs = [
        summary(f"{p}-{a}", {"experiment": p, "activation": a})
        for p in ("leaky_relu", "elu")
        for a in ("relu", "tanh")
    ]
    assert chapter.read_chapter(runs) is None
    one_preset = [summary("a", {"experiment": "elu"}), summary("b", {"experiment": "elu"})]
    assert chapter.read_chapter(one_preset) is None


def test_a_matrix_is_drawn_only_for_factors_that_were_crossed():
    from experiments.report.compare import Factor

    presets = Factor("experiment", "choice", ("a", "b", "c"))
    activation = Factor("activation", "choice", ("x", "y", "z"))
    diagonal = [
        summary(p, {"experiment": p, "activation": a}) for p, a in zip("abc", "xyz", strict=True)
    ]
    sparse = two_factor_matrix(diagonal, [presets, activation], "t", lambda r: 0.5)
    full = [summary(p + a, {"experiment": p, "activation": a}) for p in "abc" for a in "xyz"]
    crossed = two_factor_matrix(full, [presets, activation], "t", lambda r: 0.5)
    assert report.crossed({"sparse": sparse, "full": crossed}) == {"full": crossed}


# The chapter's sections, as the reference notebook orders its studies.
EXPECTED_SECTIONS = {
    "leaky_relu": chapter.INIT_AND_ACTIVATIONS,
    "prelu": chapter.INIT_AND_ACTIVATIONS,
    "elu": chapter.INIT_AND_ACTIVATIONS,
    "batchnorm_after": chapter.NORMALIZATION,
    "batchnorm_before": chapter.NORMALIZATION,
    "clip_value": chapter.CLIPPING,
    "clip_norm": chapter.CLIPPING,
    "selu_deep": chapter.DEEP,
    "relu_deep": chapter.DEEP,
    "residual_deep": chapter.DEEP,
    "layernorm_deep": chapter.DEEP,
    "one_cycle": chapter.OPTIMIZERS,
    "momentum": chapter.OPTIMIZERS,
    "nesterov": chapter.OPTIMIZERS,
    "adamw": chapter.OPTIMIZERS,
    "transfer": chapter.TRANSFER,
    "cnn": chapter.CONV,
    "cnn_plain_deep": chapter.CONV,
    "cnn_batchnorm_deep": chapter.CONV,
    "resnet_small": chapter.CONV,
    "cnn_groupnorm": chapter.CONV,
}


@pytest.mark.parametrize("preset", list(EXPECTED_SECTIONS))
def test_every_study_preset_lands_in_its_section_of_the_chapter(preset):
    """From what the composed preset chooses, as its run records it."""
    cfg = compose([f"experiment={preset}"], return_hydra_config=True)
    choices = {k: str(v) for k, v in cfg.hydra.runtime.choices.items() if v and "/" not in k}
    params = {
        "model.hidden": str(list(cfg.model.hidden)),
        "model.repeat": str(cfg.model.repeat),
        "model.kind": str(cfg.model.kind.value),
        "optimizer.momentum": str(cfg.optimizer.momentum),
    }
    run = RunSummary(preset, preset, "FINISHED", choices, params, {}, {})
    assert chapter.section_of(run) == EXPECTED_SECTIONS[preset]
