"""Where the lab's files are: its config tree (inside the package, so an installed wheel
has it too) and, when it runs from a checkout, the checkout's root."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CONF_DIR = PACKAGE_DIR / "conf"
_ROOT = PACKAGE_DIR.parents[1]
# The checkout (src layout, editable install) or None for an installed wheel, whose
# parents are site-packages: nothing of the lab's own is written or read there.
CHECKOUT_DIR: Path | None = _ROOT if (_ROOT / "pyproject.toml").is_file() else None


def home_dir() -> Path:
    """The folder the lab's own defaults live under: the checkout, else the working
    directory (an installed command writes where it is run, as `mlflow` does)."""
    return CHECKOUT_DIR if CHECKOUT_DIR is not None else Path.cwd()
