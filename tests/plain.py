"""Runs a script in a plain interpreter (no jaxtyping hook) and checks the errors it prints.

Under pytest the jaxtyping/beartype import hook rejects a wrongly typed argument before VRP's own
checks run, so what a user sees for wrong types is only visible outside pytest: each script prints
one line per case, ``<case> <ErrorClass> <message>``.
"""

import subprocess
import sys


def check_plain_errors(script: str, expected: dict[str, str]) -> None:
    """Runs `script` and asserts every case of `expected` printed a line starting as given."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    got = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert set(expected) <= set(got), sorted(set(expected) - set(got))
    for name, start in expected.items():
        assert got[name].startswith(start), (name, got[name])
