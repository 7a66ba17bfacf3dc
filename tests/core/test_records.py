"""`to_frame()`: the rows of `to_records()` as a pandas DataFrame, pandas being optional."""

import sys
import types
from dataclasses import dataclass

import pytest

from vrp import ConfigError
from vrp.core import TidyRecords


@dataclass(frozen=True)
class _Result(TidyRecords):
    values: tuple[int, ...]

    def to_records(self) -> list[dict[str, object]]:
        return [{"row": i, "value": v} for i, v in enumerate(self.values)]


def test_without_pandas_to_frame_says_how_to_get_the_rows(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(ConfigError, match=r"needs pandas, which is not installed.*to_records\(\)"):
        _Result(values=(1, 2)).to_frame()


def test_with_pandas_to_frame_builds_one_row_per_record(monkeypatch) -> None:
    seen = []
    fake = types.SimpleNamespace(
        DataFrame=types.SimpleNamespace(from_records=lambda rows: seen.append(rows) or "frame")
    )
    monkeypatch.setitem(sys.modules, "pandas", fake)
    assert _Result(values=(5, 7)).to_frame() == "frame"
    assert seen == [[{"row": 0, "value": 5}, {"row": 1, "value": 7}]]


def test_every_tabular_result_offers_to_frame() -> None:
    import circuits
    from vrp.pipeline import BatchSignals
    from vrp.probes import SweepResult

    for cls in (BatchSignals, SweepResult, circuits.AblationStudy, circuits.PatchResult,
                circuits.Localisation):  # fmt: skip
        assert issubclass(cls, TidyRecords) and callable(cls.to_records), cls
