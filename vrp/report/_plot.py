"""Matplotlib helpers: figures are built on `matplotlib.figure.Figure` (no pyplot, so no global
backend or state is touched) and saved as PNG without a timestamp, so a report rebuilt from the
same run has the same bytes."""

import io
from collections.abc import Iterable
from typing import Any

from ..core import ConfigError

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
"""One colour per model, in the run's model order."""
CONTROL = "#9a9a9a"


def new_figure(
    panels: int, *, width: float = 4.2, height: float = 3.2, rows: int = 1
) -> tuple[Any, list[Any]]:
    """A figure of `rows` rows of `panels` side-by-side axes; returns (figure, axes row by row)."""
    try:
        from matplotlib.figure import Figure
    except ModuleNotFoundError:  # pragma: no cover - matplotlib is in the plot and test extras
        raise ConfigError(
            "vrp report draws its figures with matplotlib, which is not installed. Install it "
            "with: pip install 'vrp[plot]' (or pip install matplotlib)."
        ) from None
    fig = Figure(figsize=(width * panels, height * rows), dpi=100, layout="constrained")
    axes = fig.subplots(rows, panels, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def png(fig: Any) -> bytes:
    """The figure as PNG bytes (no creation-time metadata: deterministic)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def integer_axis(ax: Any) -> None:
    """Whole-number ticks on the x axis (layers)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def short_name(model: str) -> str:
    """A model's name for a legend or panel title ("organism/llava" -> "llava")."""
    return model.rstrip("/").rsplit("/", 1)[-1]


def interval(estimate: dict[str, Any] | None) -> tuple[float, float, float] | None:
    """(value, low, high) of an estimate dict, the interval ends falling back to the value where
    absent; None when the value itself is undefined."""
    from ._format import finite

    e = estimate or {}
    y = finite(e.get("estimate"))
    if y is None:
        return None
    lo, hi = finite(e.get("ci_low")), finite(e.get("ci_high"))
    return y, y if lo is None else lo, y if hi is None else hi


Series = tuple[list[float], list[float], list[float], list[float]]


def series(points: Iterable[tuple[int | float, dict[str, Any] | None]]) -> Series:
    """(xs, values, lows, highs) of (x, estimate dict) points, undefined ones left out."""
    out: Series = ([], [], [], [])
    for x, estimate in points:
        found = interval(estimate)
        if found is not None:
            for column, value in zip(out, (x, *found), strict=True):
                column.append(float(value))
    return out
