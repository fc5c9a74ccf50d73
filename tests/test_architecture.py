"""The house rules of docs/architecture.md, checked on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

from experiments.paths import PACKAGE_DIR

PACKAGE = PACKAGE_DIR


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: imported_modules(path, known) - {name} for name, path in files.items()}


def test_every_package_init_is_empty():
    for init in PACKAGE.rglob("__init__.py"):
        assert init.read_text().strip() == "", init


def test_no_more_than_eight_modules_beside_the_packages():
    # __main__ (`python -m experiments`) only lists the commands.
    modules = [p for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(modules) <= 8, sorted(p.name for p in modules)


def test_no_library_module_imports_the_entry_point():
    importers = [name for name, deps in graph().items() if "experiments.train" in deps]
    assert importers == []


def test_there_are_no_import_cycles():
    deps = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(deps.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(deps):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def reachable(start: str, deps: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(deps.get(node, ()))
    return seen


def test_nothing_below_config_imports_it():
    """config/ assembles the groups' schemas; the modules it imports (each group's own
    code, and everything under it) never import config back."""
    deps = graph()
    below = reachable("experiments.config.schema", deps) | reachable(
        "experiments.config.checks", deps
    )
    below = {m for m in below if not m.startswith("experiments.config")}
    importers = sorted(m for m in below if any(d.startswith("experiments.config") for d in deps[m]))
    assert importers == []


def test_the_entry_point_reaches_only_what_a_run_needs():
    """`python -m experiments.train`, in-function imports counted, never reaches the report,
    the sweep's callback, sync or the UI: a run does not need them."""
    reached = reachable("experiments.train", graph())
    extra = sorted(
        m
        for m in reached
        if m.startswith(("experiments.report", "experiments.sweeps.callback"))
        or m in ("experiments.sync", "experiments.tracking.ui")
    )
    assert extra == []


def test_tracking_talks_only_to_mlflow():
    """Nothing in tracking/ imports the lab's training, models, diagnostics or runs."""
    deps = graph()
    lab = ("experiments.training", "experiments.models", "experiments.diagnostics")
    found = sorted(
        (m, d)
        for m in deps
        if m.startswith("experiments.tracking")
        for d in deps[m]
        if d.startswith((*lab, "experiments.runs", "experiments.transfer"))
    )
    assert found == []


# Libraries whose import costs seconds, or that config-only commands must not load.
HEAVY = ("keras", "tensorflow", "mlflow", "optuna", "ray")


def test_imports_inside_functions_keep_heavy_libraries_off_light_paths():
    """An import inside a function is of a heavy library the module does not import
    anyway, or carries its reason in a comment just above (the first of a block of
    imports)."""
    unexplained = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().split("\n")
        tree = ast.parse("\n".join(lines))
        at_top = {  # a library the module imports anyway gains nothing inside a function
            (n.module if isinstance(n, ast.ImportFrom) else n.names[0].name).split(".")[0]
            for n in tree.body
            if isinstance(n, ast.Import | ast.ImportFrom)
            and (not isinstance(n, ast.ImportFrom) or n.module)
        }
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom):
                    module = node.module or ""
                elif isinstance(node, ast.Import):
                    module = node.names[0].name
                else:
                    continue
                if module.split(".")[0] in HEAVY and module.split(".")[0] not in at_top:
                    continue
                above = node.lineno - 2
                while above >= 0 and lines[above].strip().startswith(("from ", "import ")):
                    above -= 1
                if not lines[above].strip().startswith("#"):
                    unexplained.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {module}")
    assert unexplained == []


def test_tag_names_are_spelt_once():
    """A tag the lab writes or reads is named in core/names.py, and only there (docstrings
    aside; a few words also name other things: a JSON field, a column, a file)."""
    from experiments.core import names

    tags = {
        value
        for key, value in vars(names).items()
        if key.endswith(("_TAG", "_PREFIX", "_ENV")) and isinstance(value, str)
    } - {"seed", "host", "pid", "output_dir"}
    spelt = []
    for path in [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "hydra_plugins").rglob("*.py")]:
        if path.name == "names.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        spelt += [
            f"{path.name}:{node.lineno} {node.value}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in tags and id(node) not in docstrings
        ]
    assert spelt == []
