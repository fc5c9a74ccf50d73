"""The report page: the words first, then the figures, the matrices and the runs table.

Written with `html.escape` and f-strings: one static page of a few tables needs no
template engine. Figures are embedded as base64 data URIs as well as written beside
the page, because the MLflow UI shows an HTML artifact from a blob URL inside a
sandboxed iframe, where a relative `<img src="x.png">` cannot load.
"""

from __future__ import annotations

import base64
import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path

from experiments.report.compare import Factor, Matrix, val_accuracy
from experiments.report.data import RunSummary
from experiments.report.groups import Statistics, health_of, seed_of, verdict_of
from experiments.report.text import number

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
ul.summary li { margin: 0.2em 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
tr.best { background: #e8f6e8; }
tr.failed { background: #fbeaea; }
small, .small { color: #666; font-size: 0.85em; }
tr.significant { background: #e8f6e8; }
th.varies { background: #dde8f7; }
figure { margin: 1em 0; }
figure img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; max-width: 70em; }
.reason { color: #a00; font-size: 0.9em; }
"""

REASON_CHARS = 300
FIGURE_CAPTIONS = {
    "learning_curves": "Learning curves: validation accuracy and training loss after each "
    "epoch, one line per run. A cross marks the last finite point of a run that did not "
    "finish.",
    "depth_profiles": "Gradient and activation statistics over depth, one line per run, log "
    "scale, at initialization (left) and at the last probe step (right). A gradient signal "
    "that falls towards block 1 is vanishing; one that rises, exploding; a flat line keeps "
    "every layer learning.",
    "group_curves": "Validation accuracy after each epoch, one line per configuration: the "
    "mean over its seeds, with the 95% confidence interval of the mean as a band (t "
    "interval; none where a single run reaches that epoch).",
    "matrix_val_accuracy": "Final val_accuracy over the two factors (mean over repeats; "
    "grey: no finished run).",
    "matrix_depth_ratio": "depth_ratio = gradient signal std of the first hidden block / "
    "the last's (geometric mean over repeats): white near 1, blue below (vanishing), red "
    "above (exploding).",
}


@dataclass
class Column:
    title: str
    value: Callable[[RunSummary], object]
    text: bool = False
    varies: bool = False


def _metric(key: str) -> Callable[[RunSummary], float | None]:
    return lambda run: run.metrics.get(key)


def _status(run: RunSummary) -> str:
    if run.status == "FINISHED" or not run.failure_reason:
        return run.status
    return f"{run.status}: {run.failure_reason}"


def columns(runs: list[RunSummary], factors: list[Factor]) -> list[Column]:
    """Varying groups first (highlighted), then the groups every run shares."""
    varying = [f.key for f in factors if f.kind == "choice"]
    groups = varying + sorted({g for run in runs for g in run.choices} - set(varying))
    cols = [Column("run", lambda run: run.name, text=True)]
    cols += [
        Column(g, lambda run, g=g: run.choices.get(g, ""), text=True, varies=g in varying)
        for g in groups
    ]
    cols += [
        Column(f.key, lambda run, f=f: f.value(run), text=True, varies=True)
        for f in factors
        if f.kind == "param"
    ]
    cols += [
        Column("seed", lambda run: seed_of(run) or "", text=True),
        Column("train acc", _metric("accuracy")),
        Column("val acc", _metric("val_accuracy")),
        Column("test acc", _metric("test_accuracy")),
        Column("train loss", _metric("loss")),
        Column("val loss", _metric("val_loss")),
        Column("test loss", _metric("test_loss")),
        Column("epochs", lambda run: run.epochs),
        Column("s/epoch", lambda run: run.seconds_per_epoch),
        Column("depth_ratio init", lambda run: run.depth_ratio("init")),
        Column("depth_ratio end", lambda run: run.depth_ratio("last")),
        Column("gradient health", health_of, text=True),
        Column("status", _status, text=True),
        Column("run id", lambda run: run.run_id, text=True),
    ]
    return cols


def table_order(runs: list[RunSummary]) -> list[RunSummary]:
    """Best val_accuracy first; runs that did not finish last, in their own order."""
    finished = sorted(
        (r for r in runs if val_accuracy(r) is not None), key=val_accuracy, reverse=True
    )
    return finished + [r for r in runs if val_accuracy(r) is None]


def write_rows(path: Path, columns: tuple[str, ...], rows: list[dict[str, object]]) -> Path:
    """A CSV file of these columns; a missing or non-finite number is an empty cell."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: "" if isinstance(v, float) and not math.isfinite(v) else v
                    for k, v in row.items()
                }
            )
    return path


def write_csv(runs: list[RunSummary], cols: list[Column], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([c.title for c in cols])
        for run in table_order(runs):
            writer.writerow(["" if (v := c.value(run)) is None else v for c in cols])
    return path


def runs_table(runs: list[RunSummary], cols: list[Column]) -> str:
    head = "".join(
        f'<th class="{"text" if c.text else ""} {"varies" if c.varies else ""}">'
        f"{escape(c.title)}</th>"
        for c in cols
    )
    ordered = table_order(runs)
    best = ordered[0] if ordered and val_accuracy(ordered[0]) is not None else None
    body = []
    for run in ordered:
        css = "best" if run is best else "failed" if run.failed else ""
        cells = []
        for c in cols:
            value = c.value(run)
            raw = number(value)
            text = escape(raw)
            if c.title == "gradient health":
                text = f'<span title="{escape(verdict_of(run).reason)}">{text}</span>'
            if c.title == "status" and run.failed:
                # A reason may be a whole exception message: the cell shows its start, the
                # tooltip and runs.csv all of it.
                shown = raw if len(raw) <= REASON_CHARS else raw[:REASON_CHARS] + "…"
                text = f'<span class="reason" title="{text}">{escape(shown)}</span>'
            cells.append(f'<td class="{"text" if c.text else ""}">{text}</td>')
        body.append(f'<tr class="{css}" data-run-id="{escape(run.run_id)}">{"".join(cells)}</tr>')
    return (
        f'<table class="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def _cells(values: list[str], header: bool = False) -> str:
    tag = "th" if header else "td"
    return "".join(f"<{tag}>{escape(v)}</{tag}>" for v in values)


def interval(low: float, high: float) -> str:
    return "" if not math.isfinite(low) else f"{number(low)} to {number(high)}"


def _spread(std: float) -> str:
    """A single run has no spread: its cell stays empty rather than reading `nan`."""
    return number(std) if math.isfinite(std) else ""


def groups_table(stats: Statistics) -> str:
    """One row per configuration: its runs and seeds, each metric's mean, std and 95%
    interval (as groups.csv has them) and its runs' gradient verdicts."""
    metrics = list(dict.fromkeys(m for g in stats.groups for m in g.summaries))
    head = ["configuration", "runs", "seeds"]
    for metric in metrics:
        head += [f"{metric} n", "mean", "std", "95% CI"]
    head.append("gradient health")
    rows = []
    for g in stats.groups:
        runs = f"{len(g.runs)}" + (f" ({g.failed} failed)" if g.failed else "")
        # A seed that ran more than once is counted: its runs are not paired by seed.
        seeds = [s + (f" ×{k}" if k > 1 else "") for s, k in g.seed_counts().items()]
        cells = [g.label, runs, ", ".join(seeds)]
        for metric in metrics:
            s = g.summaries.get(metric)
            cells += (
                [str(s.n), number(s.mean), _spread(s.std), interval(s.ci_low, s.ci_high)]
                if s
                else ["", "", "", ""]
            )
        cells.append(", ".join(f"{h} {n}" for h, n in g.health_counts().items()))
        rows.append(f'<tr data-group="{escape(g.key)}">{_cells(cells)}</tr>')
    return (
        f'<table class="groups"><thead><tr>{_cells(head, header=True)}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def comparisons_table(stats: Statistics) -> str:
    head = ["a", "b", "factor", "metric", "diff (a - b)", "95% CI", "test", "runs (a vs b)",
            "p", "p (Holm)", "significant", "seeds for 80% power"]  # fmt: skip
    rows = []
    for c in stats.comparisons:
        t = c.test
        test = f"{t.name} ({t.unpaired_because})" if t.unpaired_because else t.name
        cells = [c.a, c.b, c.factor, c.metric, number(t.diff), interval(t.ci_low, t.ci_high),
                 test, f"{t.n_a} vs {t.n_b}", f"{t.p_value:.3g}", f"{c.p_adjusted:.3g}",
                 "yes" if c.significant else "no", str(c.seeds_needed or "")]  # fmt: skip
        css = "significant" if c.significant else ""
        rows.append(f'<tr class="{css}">{_cells(cells)}</tr>')
    return (
        f'<table class="comparisons"><thead><tr>{_cells(head, header=True)}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def matrix_table(name: str, matrix: Matrix) -> str:
    head = "".join(f"<th>{escape(matrix.cols.label(v))}</th>" for v in matrix.cols.values)
    rows = []
    for i, value in enumerate(matrix.rows.values):
        cells = "".join(
            f"<td>{escape(number(float(v), 4 if not matrix.log_scale else 3))}</td>"
            if math.isfinite(v)
            else "<td>—</td>"
            for v in matrix.values[i]
        )
        rows.append(f'<tr><th class="text">{escape(matrix.rows.label(value))}</th>{cells}</tr>')
    corner = f"{escape(matrix.rows.key)} \\ {escape(matrix.cols.key)}"
    return (
        f"<h3>{escape(matrix.title)}</h3>"
        f'<table class="matrix" data-name="{escape(name)}"><thead><tr><th class="text">{corner}'
        f"</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def figure_html(name: str, path: Path, extra: str = "") -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = " ".join(filter(None, [FIGURE_CAPTIONS.get(name, ""), extra]))
    return (
        f'<figure id="{escape(name)}"><img alt="{escape(name)}" data-file="{escape(path.name)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{escape(caption)}</figcaption></figure>'
    )


def write_page(
    path: Path,
    title: str,
    source: str,
    lines: list[str],
    figures: dict[str, Path],
    matrices: dict[str, Matrix],
    runs: list[RunSummary],
    cols: list[Column],
    notes: list[str],
    legend: str = "",
    stats: Statistics | None = None,
    sections: list[str] | None = None,
) -> Path:
    """`legend` says what colour and line style stand for; it joins the line-figure
    captions. `sections` are HTML sections of their own (a search's), placed after the
    words, before the figures of every run: the reader of a search comes for them."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{escape(source)}</p>",
        '<ul class="summary">' + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>",
    ]
    parts += [f"<p><em>{escape(note)}</em></p>" for note in notes]
    parts += sections or []
    for name, figure_path in figures.items():
        if not name.startswith(("matrix_", "search_")):
            parts.append(figure_html(name, figure_path, legend))
    if stats is not None and stats.groups:
        parts.append(f"<h2>Configurations ({len(stats.groups)}): groups.csv</h2>")
        parts.append(groups_table(stats))
    if stats is not None and stats.comparisons:
        parts.append(f"<h2>Comparisons ({len(stats.comparisons)}): comparisons.csv</h2>")
        parts.append(comparisons_table(stats))
    if matrices:
        parts.append("<h2>Two-factor matrices</h2>")
        parts += [figure_html(n, p) for n, p in figures.items() if n.startswith("matrix_")]
        parts += [matrix_table(name, matrix) for name, matrix in matrices.items()]
    parts.append(f"<h2>Runs ({len(runs)})</h2>")
    parts.append(runs_table(runs, cols))
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
