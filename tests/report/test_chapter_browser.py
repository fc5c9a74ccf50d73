"""The page of a small sweep of presets, opened in a real browser at 1280 x 800: it
fits the window's width, its title fits a line, it shows no `nan`, every figure loads,
and each preset is there with its purpose. The screenshot is kept in the test's
temporary folder (the test prints where)."""

from __future__ import annotations

import re

import pytest
from helpers.browser import chromium_page, needs_chromium
from helpers.compose import FAST
from helpers.workspace import Workspace

from experiments.config.presets import purpose

pytestmark = [pytest.mark.slow, needs_chromium, pytest.mark.xdist_group("report.chapter_browser")]
# Four presets from three sections of the chapter, one epoch each on the synthetic set.
STUDY = ("leaky_relu", "elu", "batchnorm_after", "clip_norm")
WIDTH, HEIGHT = 1280, 800


@pytest.fixture(scope="module")
def preset_sweep(tmp_path_factory) -> Workspace:
    workspace = Workspace(tmp_path_factory.mktemp("preset_sweep"))
    sweep = ["-m", *FAST, "training.epochs=1", "experiment=" + ",".join(STUDY)]
    assert workspace.train(*sweep) == 0
    return workspace


def test_the_chapters_page_reads_in_one_screen_width(preset_sweep, tmp_path):
    report = preset_sweep.folder / "multirun" / "report" / "report.html"
    with chromium_page(WIDTH, HEIGHT) as page:
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=tmp_path / "chapter.png", full_page=True)
        print(f"screenshot: {tmp_path / 'chapter.png'}")

        document_width = page.evaluate("document.documentElement.scrollWidth")
        assert document_width <= page.evaluate("window.innerWidth") == WIDTH
        title = page.title()
        assert title == page.inner_text("h1") and len(title) < 100
        assert title == f"gradient-lab: {len(STUDY)} presets, seed 42, 1 epoch"
        # Every text of the page, collapsed blocks included.
        text = page.evaluate("document.body.textContent")
        assert not re.search(r"\bnan\b", text, flags=re.I)
        images = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.alt, i.complete, i.naturalWidth])"
        )
        assert len(images) == 3, images  # a figure per section
        for alt, complete, width in images:
            assert complete and width > 0, alt
        for preset in STUDY:
            row = page.inner_text(f'tr[data-preset="{preset}"]')
            assert preset in row and purpose(preset) in row
