"""Bad-input cases: engine (see _case.py)."""

from ._case import Case

CASES: tuple[Case, ...] = ()
