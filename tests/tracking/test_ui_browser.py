"""The MLflow UI and the sweep's report, looked at in a real browser (Debian's headless
chromium, driven by Playwright) as a person would: the runs of a small sweep nested
under its parent, each run's datasets, logged model and description, and every figure
of the report drawn. Screenshots are kept in the test's temporary folder."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest
from helpers.browser import chromium_page, needs_chromium
from helpers.sweeps import free_port

from experiments.processes import child_environment

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("small_sweep"), needs_chromium]


@pytest.fixture
def ui(small_sweep):
    """`python -m experiments.tracking.ui` on the small sweep's store; its address."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "experiments.tracking.ui", "--port", str(port)],
        cwd=small_sweep.folder,
        env=child_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    address = process.stdout.readline().split(" on ", 1)[1].split(" (", 1)[0]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    yield address
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def browser():
    with chromium_page(1500, 1000) as page:
        yield page


def test_the_ui_shows_the_sweep_its_datasets_models_and_descriptions(
    small_sweep, ui, browser, tmp_path
):
    runs = small_sweep.runs()
    (parent,) = [r for r in runs if r.data.tags.get("sweep") == "true"]
    children = [r for r in runs if r.info.run_id != parent.info.run_id]
    assert "workflowType=machine_learning" in ui

    browser.goto(ui)
    browser.get_by_text(parent.info.run_name).first.wait_for(timeout=90_000)
    assert "3 matching runs" in browser.inner_text("body")
    # Children sit under their parent, collapsed: the parent's name cell has the expander.
    browser.locator('button[data-component-id*="runnamecellrenderer"]').first.click()
    for child in children:
        browser.get_by_text(child.info.run_name).first.wait_for(timeout=30_000)
    table = browser.inner_text("body")
    assert "synthetic-train" in table and "Training" in table  # the Dataset column
    assert "model" in table.split("Models", 1)[1]  # the Models column
    browser.screenshot(path=tmp_path / "runs.png", full_page=True)

    child = children[0]
    browser.set_viewport_size({"width": 1500, "height": 3000})  # the whole overview at once
    browser.goto(ui.replace("?", f"/runs/{child.info.run_id}?"))
    browser.get_by_text("Logged models (1)").first.wait_for(timeout=60_000)
    # The models table fills in after its header: wait for its row, not only its title.
    browser.get_by_text("Ready", exact=True).first.wait_for(timeout=60_000)
    page = browser.inner_text("body")
    assert child.data.tags["mlflow.note.content"] in page  # the description
    assert "synthetic-train" in page and "Training" in page  # its datasets
    assert "Ready" in page.split("Logged models (1)", 1)[1]  # its model, logged and ready
    assert parent.info.run_name.split()[0] in page.split("Parent run", 1)[1]
    assert "experiments.train" in page.split("Source", 1)[1]  # who ran what, from where
    browser.screenshot(path=tmp_path / "run.png", full_page=True)

    # The charts: one section per prefix, the headlines (grad/, act/) above the per-layer
    # series, which get a section per statistic (layers/grad/signal_std, ...).
    browser.get_by_text("Model metrics").first.click()
    browser.get_by_text("layers/grad/signal_std").first.wait_for(timeout=60_000)
    charts = browser.inner_text("body")
    assert charts.index("depth_ratio") < charts.index("layers/grad/signal_std")
    browser.screenshot(path=tmp_path / "metrics.png")


def test_every_figure_of_the_sweeps_report_renders(small_sweep, browser, tmp_path):
    report = small_sweep.folder / "multirun" / "report" / "report.html"
    browser.goto(report.as_uri())
    browser.wait_for_load_state("load")
    images = browser.eval_on_selector_all(
        "img", "imgs => imgs.map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert len(images) >= 2, images  # learning curves, depth profiles at least
    for alt, complete, width, height in images:
        assert complete and width > 100 and height > 100, alt
    browser.screenshot(path=tmp_path / "report.png", full_page=True)
