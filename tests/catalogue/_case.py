"""One row of the bad-input catalogue: what a careful user might pass, and the error VRP owes them.

Each `Case` runs `call` (which receives pytest's `tmp_path`, so it can write the bad file it needs)
and expects a `VrpError` subclass whose message matches every pattern in `says`: what was expected,
what arrived and how to fix it. `leaves` lists paths (relative to `tmp_path`) that must NOT exist
afterwards: bad input never leaves half-written output behind.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Case:
    """A bad input and the error it must raise.

    Attributes:
      id: short test id, e.g. "auroc-empty".
      call: runs the bad input; receives `tmp_path`.
      error: the `VrpError` subclass expected (exactly this class or a subclass).
      says: regular expressions the message must all match (re.search, case-sensitive).
      leaves: paths under `tmp_path` that must not exist after the failure.
    """

    id: str
    call: Callable[[Path], Any]
    error: type[Exception]
    says: tuple[str, ...]
    leaves: tuple[str, ...] = field(default=())
