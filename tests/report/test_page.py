"""The report of a small sweep in a temporary store: table, figures, matrices, words, errors."""

from __future__ import annotations

import base64
import csv
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import helpers.report_runs as sweep
import pytest
from helpers.report_runs import ACTIVATIONS, FAILED, INITS, NO_ARTIFACT, NO_DIAGNOSTICS

from experiments.report import build as report
from experiments.report.__main__ import main as report_main
from experiments.report.data import select_runs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ("learning_curves", "depth_profiles", "matrix_val_accuracy", "matrix_depth_ratio")


class PageParser(HTMLParser):
    """The run ids of the runs table's rows, each row's text, and the embedded images."""

    def __init__(self):
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.images: dict[str, str] = {}
        self.summary: list[str] = []
        self._row: str | None = None
        self._in_summary = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-run-id" in attrs:
            self._row = attrs["data-run-id"]
            self.rows[self._row] = []
        if tag == "img":
            self.images[attrs["data-file"]] = attrs["src"]
        if tag == "ul" and attrs.get("class") == "summary":
            self._in_summary = True

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        if tag == "ul":
            self._in_summary = False

    def handle_data(self, data):
        if self._row is not None and data.strip():
            self.rows[self._row].append(data.strip())
        if self._in_summary and data.strip():
            self.summary.append(data.strip())


# One worker runs the whole module, so its module-scoped fixtures are built once.
pytestmark = pytest.mark.xdist_group("report.test_page")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return sweep.make_sweep(tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="module")
def built(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    selection = select_runs(store.client(), parent_run_id=store.parent_id)
    result = report.build_report(selection, out)
    page = PageParser()
    page.feed(result.html.read_text())
    return result, page


def test_every_run_is_in_the_table_and_the_failed_one_says_why(store, built):
    result, page = built
    assert set(page.rows) == set(store.run_ids.values())  # the parent run is not a row
    failed_row = " ".join(page.rows[store.run_ids[FAILED]])
    assert f"FAILED: {sweep.FAILURE_REASON}" in failed_row
    for key, run_id in store.run_ids.items():
        if key != FAILED:
            assert "FINISHED" in page.rows[run_id]
    with result.csv.open() as f:
        rows = list(csv.DictReader(f))
    assert {row["run id"] for row in rows} == set(store.run_ids.values())
    by_id = {row["run id"]: row for row in rows}
    best = by_id[store.run_ids["lecun_normal", "selu"]]
    assert float(best["val acc"]) == pytest.approx(sweep.val_accuracy("lecun_normal", "selu"))
    assert best["epochs"] == str(sweep.EPOCHS)
    assert float(best["s/epoch"]) == pytest.approx(3.0)  # median of 2, 3, 4
    assert rows[0]["run id"] == store.run_ids["lecun_normal", "selu"]  # best first
    assert rows[-1]["run id"] == store.run_ids[FAILED]  # did not finish: last


def test_every_figure_is_a_png_file_and_embedded_in_the_page(built):
    result, page = built
    assert set(result.figures) == set(FIGURES)
    for name in FIGURES:
        path = result.figures[name]
        assert path.parent == result.html.parent and path.name == f"{name}.png"
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
        # The MLflow UI shows the page in a sandboxed iframe: the images must travel inside it.
        assert base64.b64decode(page.images[path.name].split(",", 1)[1]) == data


def test_matrices_have_one_row_per_init_and_one_column_per_activation(store, built):
    result, _ = built
    accuracy = result.matrices["val_accuracy"]
    assert accuracy.shape == (len(INITS), len(ACTIVATIONS))
    assert (accuracy.rows.key, accuracy.cols.key) == ("init", "activation")
    assert accuracy.rows.values == INITS and accuracy.cols.values == ACTIVATIONS
    for i, init in enumerate(INITS):
        for j, activation in enumerate(ACTIVATIONS):
            value = accuracy.values[i, j]
            if (init, activation) == FAILED:
                assert math.isnan(value) and accuracy.failed[i, j] == 1
            else:
                assert value == pytest.approx(sweep.val_accuracy(init, activation))

    ratio = result.matrices["depth_ratio_init"]
    assert ratio.shape == (len(INITS), len(ACTIVATIONS))
    i, j = INITS.index(NO_DIAGNOSTICS[0]), ACTIVATIONS.index(NO_DIAGNOSTICS[1])
    assert math.isnan(ratio.values[i, j])
    assert ratio.values[0, 0] == pytest.approx(sweep.depth_ratio("glorot_uniform", "sigmoid", 0))
    last = result.matrices["depth_ratio_last"]
    # The failed run's last probe step is epoch 1; the others', the last epoch.
    assert last.values[0, 0] == pytest.approx(sweep.depth_ratio(*FAILED, 1))
    assert last.values[1, 1] == pytest.approx(sweep.depth_ratio("he_normal", "selu", sweep.EPOCHS))


def test_the_first_lines_name_the_differences_the_numbers_and_the_failure(built):
    _, page = built
    text = "\n".join(page.summary)
    assert "6 runs: 5 finished, 1 did not." in text
    assert (
        "They differ in init (glorot_uniform, he_normal, lecun_normal); activation (sigmoid, selu)"
        in text
    )
    # One seed per configuration: the numbers, in the sweep's order, and no ranking.
    assert "One seed per configuration: no comparison is possible" in text
    assert re.search(r"Final val_accuracy, one run each \(not a ranking\): glorot_uniform · selu "
                     r"0\.7000; .*lecun_normal · selu 0\.9000\.", text)  # fmt: skip
    assert " beats " not in text and " > " not in text and "Best" not in text
    # Verdicts: the runs carry no tag, so the report judges them from their diagnostics.
    assert (
        "Gradient health (tag gradient_health), runs: diverged 1 (glorot_uniform · sigmoid: 1 "
        "of 1), vanishing 1 (he_normal · sigmoid: 1 of 1), healthy 3, unknown 1." in text
    )
    assert f"FAILED: glorot_uniform · sigmoid: {sweep.FAILURE_REASON}" in text
    assert "vanishing" in text


def test_diagnostics_come_from_the_artifact_or_else_from_the_per_layer_metrics(store):
    runs = {r.run_id: r for r in select_runs(store.client(), parent_run_id=store.parent_id).runs}
    assert runs[store.run_ids[NO_DIAGNOSTICS]].diagnostics is None
    for key in (NO_ARTIFACT, ("he_normal", "sigmoid")):
        diagnostics = runs[store.run_ids[key]].diagnostics
        assert diagnostics.layers == [1, 2, 3]
        assert diagnostics.epochs == list(range(sweep.EPOCHS + 1))
        assert diagnostics.profile("grad/signal_std", "init").tolist() == pytest.approx(
            sweep.signal_std(*key, 0)
        )
        assert diagnostics.profile("act/std", "last").tolist() == pytest.approx(
            sweep.act_std(key[1], sweep.EPOCHS)
        )


def test_a_filter_keeps_matching_runs_and_one_factor_makes_no_matrix(store, tmp_path, capsys):
    code = report_main(
        [
            "--tracking-uri",
            store.uri,
            "--filter",
            "tags.`choice.activation` = 'selu'",
            "--out",
            str(tmp_path / "selu"),
        ]
    )
    assert code == 0
    page = PageParser()
    page.feed((tmp_path / "selu" / "report.html").read_text())
    assert set(page.rows) == {store.run_ids[init, "selu"] for init in INITS}
    assert not (tmp_path / "selu" / "matrix_val_accuracy.png").exists()
    assert "Fewer than two factors vary" in (tmp_path / "selu" / "report.html").read_text()
    assert "report of 3 runs (0 did not finish)" in capsys.readouterr().out


def test_default_store_and_output_folder_follow_the_launch_folder(store, monkeypatch, capsys):
    monkeypatch.chdir(store.folder)  # holds mlflow.db, as after `python -m experiments.train`
    assert report_main([]) == 0
    out = store.folder / "reports" / "gradient-lab" / "report.html"
    page = PageParser()
    page.feed(out.read_text())
    # The whole experiment, without the sweep parent run.
    assert set(page.rows) == set(store.run_ids.values())
    assert str(Path("reports") / "gradient-lab" / "report.html") in capsys.readouterr().out


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_unknown_experiment_is_one_line(store, capsys):
    assert report_main(["--tracking-uri", store.uri, "--experiment", "no-such"]) == 1
    line = _one_line_error(capsys)
    assert "'no-such': no such experiment" in line and "known: " in line and "gradient-lab" in line


def test_experiment_without_runs_is_one_line(tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("empty")
    capsys.readouterr()  # MLflow's own log lines from creating the store
    assert report_main(["--tracking-uri", uri, "--experiment", "empty", "-o", str(tmp_path)]) == 1
    assert "no runs to report: experiment 'empty' has none" in _one_line_error(capsys)
    assert not (tmp_path / "report.html").exists()


def test_missing_store_is_one_line_and_is_not_created(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert report_main([]) == 1
    assert "mlflow.db does not exist" in _one_line_error(capsys)
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--parent-run", "0123456789abcdef"], "--parent-run 0123456789abcdef: no such run"),
        (["--filter", "params.x ~ 'y'"], "--filter"),
        (["--filter", "tags.`choice.init` = 'orthogonal'"], "no runs to report"),
    ],
)
def test_bad_selection_is_one_line(store, capsys, args, words):
    assert report_main(["--tracking-uri", store.uri, *args]) == 1
    assert words in _one_line_error(capsys)


@pytest.mark.parametrize("where", ["a-file", "a-file/report"], ids=["file", "under-a-file"])
def test_an_output_folder_that_cannot_be_made_is_one_line(store, tmp_path, capsys, where):
    """`-o <an existing file>` ended in a FileExistsError traceback."""
    (tmp_path / "a-file").write_text("kept")
    out = tmp_path / where
    assert report_main(["--tracking-uri", store.uri, "-o", str(out)]) == 1
    line = _one_line_error(capsys)
    assert line.startswith(f"error: report folder {out}: ")
    assert "give -o a folder (new or existing, writable)" in line
    assert (tmp_path / "a-file").read_text() == "kept"


def test_an_output_file_is_refused_before_the_store_is_read(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no store here: the folder is the first thing said
    (tmp_path / "report.html").write_text("")
    assert report_main(["-o", "report.html"]) == 1
    assert _one_line_error(capsys) == (
        "error: report folder report.html: exists and is not a folder; give -o a folder "
        "(new or existing, writable) for report.html and its figures"
    )


def test_sweep_report_is_logged_to_the_parent_run(store, tmp_path):
    client = store.client()
    html = report.log_sweep_report(client, store.parent_id, tmp_path / "sweep-report")
    assert html == tmp_path / "sweep-report" / "report.html"
    logged = {f.path for f in client.list_artifacts(store.parent_id, "report")}
    assert {"report/report.html", "report/runs.csv"} | {
        f"report/{n}.png" for n in FIGURES
    } <= logged


def test_sweep_report_of_a_sweep_without_children_logs_a_warning_not_an_error(
    store, tmp_path, caplog
):
    client = store.client()
    lonely = client.create_run(store.experiment_id, tags={"sweep": "true"}).info.run_id
    assert report.log_sweep_report(client, lonely, tmp_path / "none") is None
    assert "no runs to report" in caplog.text
    assert client.list_artifacts(lonely) == []
