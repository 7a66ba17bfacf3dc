"""The bad-input catalogue: every row must raise its documented `VrpError` with a useful message.

The rows live in `cases_*.py` beside this file (one table per area of the library); this file only
runs them, so adding a bad input is adding one `Case`.
"""

import re
from pathlib import Path

import pytest

from vrp import VrpError

from ._case import Case
from .cases_data import CASES as DATA_CASES
from .cases_engine import CASES as ENGINE_CASES

CASES: tuple[Case, ...] = (*DATA_CASES, *ENGINE_CASES)


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_raises_a_clear_vrp_error(case: Case, tmp_path: Path) -> None:
    assert issubclass(case.error, VrpError), f"{case.id}: expected errors derive from VrpError"
    with pytest.raises(VrpError) as caught:
        case.call(tmp_path)
    assert isinstance(caught.value, case.error), f"{case.id}: got {type(caught.value).__name__}"
    message = str(caught.value)
    for pattern in case.says:
        assert re.search(pattern, message), f"{case.id}: {pattern!r} not in {message!r}"
    for path in case.leaves:
        assert not (tmp_path / path).exists(), f"{case.id}: left {path} behind"
