"""What a run is, in words: a preset's purpose (the comment that opens its YAML file) and the command line's overrides; the run's description in MLflow."""

from __future__ import annotations

from experiments.paths import CONF_DIR

DEFAULT_PURPOSE = "The notebook's first network: Dense 300-100, he_normal, Leaky ReLU, SGD 1e-3."


def purpose(preset: str) -> str | None:
    """The comment that opens conf/experiment/<preset>.yaml (after its package line), its
    lines joined: the first paragraph, up to the first line that is not a comment."""
    path = CONF_DIR / "experiment" / f"{preset}.yaml"
    if not path.is_file():
        return None
    words: list[str] = []
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text.startswith("#"):
            break
        text = text.lstrip("#").strip()
        if text.startswith("@package"):
            continue
        if not text:
            if words:
                break
            continue
        words.append(text)
    return " ".join(words) or None


def describe(choices: dict[str, str], overrides: list[str]) -> str:
    """`<the preset's purpose, or the default run's>` then `Overrides: a=1, b=2.`"""
    preset = choices.get("experiment")
    words = (purpose(preset) or f"Preset {preset}.") if preset else DEFAULT_PURPOSE
    rest = [o for o in overrides if not o.startswith("experiment=")]
    if rest:
        words += " Overrides: " + ", ".join(rest) + "."
    return words
