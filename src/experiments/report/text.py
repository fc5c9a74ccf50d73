"""Numbers as the report's words, tables and CSV files show them."""

from __future__ import annotations

import math


def number(value: object, digits: int = 4) -> str:
    """Fixed point for ordinary magnitudes, three significant digits beyond; None is
    blank, non-finite values say what they are, other values as they are."""
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}f}" if 1e-3 <= abs(value) < 1e4 else f"{value:.3g}"
    return str(value)
