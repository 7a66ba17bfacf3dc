"""Bad-input cases: data (see _case.py)."""

from ._case import Case

CASES: tuple[Case, ...] = ()
