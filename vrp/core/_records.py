"""Tidy tables from result objects: `to_records()` everywhere, `to_frame()` when pandas is there.

Every result object that holds many numbers offers `to_records()` (a list of dicts, one row per
question per condition, or per cell). `records_frame` turns those rows into a pandas DataFrame;
pandas is optional, so it is imported only when asked for.
"""

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ._errors import ConfigError


def records_frame(records: Sequence[dict[str, Any]]) -> Any:
    """A pandas DataFrame of `records` (one row per dict, columns in first-seen order).

    Raises:
      ConfigError: pandas is not installed.
    """
    try:
        import pandas
    except ImportError:
        raise ConfigError(
            "to_frame() needs pandas, which is not installed. Install it (pip install pandas), "
            "or use to_records(), which returns the same rows as a list of dicts."
        ) from None
    return pandas.DataFrame.from_records(list(records))


@runtime_checkable
class _HasRecords(Protocol):
    def to_records(self) -> list[dict[str, Any]]: ...


class TidyRecords:
    """Adds `to_frame()` to a result class that defines `to_records()`."""

    def to_frame(self: _HasRecords) -> Any:
        """`to_records()` as a pandas DataFrame (pandas is optional: ConfigError without it)."""
        return records_frame(self.to_records())
