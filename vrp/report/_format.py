"""How numbers appear in the report's tables: one format per kind of number, everywhere.

Estimates and interval ends have 3 decimals, p-values 2 significant digits, percentage points
1 decimal; a missing or non-finite value is "n/a". The traceability test relies on these formats
(every number shown is one of the run's values written in one of them).
"""

import math
from typing import Any

NA = "n/a"


def finite(value: Any) -> float | None:
    """`value` as a float if it is a finite number, else None (JSON null, NaN, a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def num(value: Any, *, signed: bool = False) -> str:
    """A number with 3 decimals ("+" shown when `signed`), or "n/a"."""
    x = finite(value)
    if x is None:
        return NA
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def pp(value: Any) -> str:
    """A share as signed percentage points with 1 decimal (-0.082 -> "-8.2 pp")."""
    x = finite(value)
    return NA if x is None else f"{100 * x:+.1f} pp"


def pct(value: Any) -> str:
    """A share as a percentage with 1 decimal (0.821 -> "82.1%")."""
    x = finite(value)
    return NA if x is None else f"{100 * x:.1f}%"


def layer(value: Any) -> str:
    """A layer index, or a median of them ("L3", "L2.5"), or "n/a"."""
    x = finite(value)
    return NA if x is None else f"L{x:g}"


def pval(value: Any) -> str:
    """A p-value with 2 significant digits, or "n/a"."""
    x = finite(value)
    return NA if x is None else f"{x:.2g}"


def est(estimate: dict[str, Any] | None, *, signed: bool = False) -> str:
    """An estimate with its interval: "0.609 [0.386, 0.832]" (interval left out when absent)."""
    if not estimate:
        return NA
    text = num(estimate.get("estimate"), signed=signed)
    low, high = finite(estimate.get("ci_low")), finite(estimate.get("ci_high"))
    if text == NA or low is None or high is None:
        return text
    return f"{text} [{num(low, signed=signed)}, {num(high, signed=signed)}]"


def count(value: Any) -> str:
    """A whole number, or "n/a"."""
    x = finite(value)
    return NA if x is None else str(int(x))


def est_fields(prefix: str, estimate: dict[str, Any] | None) -> dict[str, Any]:
    """An estimate's raw values for a CSV row: ``<prefix>``, ``_ci_low``, ``_ci_high``, ``_p``,
    ``_n`` (None where absent)."""
    e = estimate or {}
    return {
        prefix: finite(e.get("estimate")),
        f"{prefix}_ci_low": finite(e.get("ci_low")),
        f"{prefix}_ci_high": finite(e.get("ci_high")),
        f"{prefix}_p": finite(e.get("p_value")),
        f"{prefix}_n": e.get("n"),
    }
