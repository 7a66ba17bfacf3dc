"""Runs scripts in a plain interpreter (no jaxtyping hook) and checks the errors they print.

Under pytest the jaxtyping/beartype import hook rejects a wrongly typed argument before VRP's own
checks run, so what a user sees for wrong types is only visible outside pytest: each script prints
one line per case, ``<case> <ErrorClass> <message>``. Every catalogue of `CATALOGUES` runs in one
interpreter, each script in a namespace of its own (one start-up instead of one per catalogue);
a script that fails reports its traceback to its own test and the others still run.
"""

import functools
import importlib
import subprocess
import sys

CATALOGUES = (
    "tests.interventions.test_graph_wrong_types",
    "tests.models.test_load_wrong_types",
    "tests.probes.test_probe_wrong_types",
    "tests.stats.test_stats_wrong_types",
    "tests.store.test_store_wrong_types",
)
_MARK = "\x00catalogue "

_RUNNER = """
import sys, traceback
scripts = {scripts!r}
for index, script in enumerate(scripts):
    print({mark!r} + str(index), flush=True)
    try:
        exec(compile(script, f"<catalogue {{index}}>", "exec"), {{"__name__": "__main__"}})
    except BaseException:
        print("\\x01failed", traceback.format_exc().replace("\\n", " | "), flush=True)
"""


@functools.cache
def _outputs() -> dict[str, str]:
    """Each catalogue script's printed lines, all scripts run in one plain interpreter."""
    scripts = [importlib.import_module(name)._SCRIPT for name in CATALOGUES]
    runner = _RUNNER.format(scripts=scripts, mark=_MARK)
    done = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    parts = done.stdout.split(_MARK)[1:]
    return {script: part.split("\n", 1)[1] if "\n" in part else ""
            for script, part in zip(scripts, parts, strict=True)}  # fmt: skip


def check_plain_errors(script: str, expected: dict[str, str]) -> None:
    """Asserts every case of `expected` printed a line starting as given when `script` (the
    `_SCRIPT` of one of `CATALOGUES`) ran in the plain interpreter."""
    printed = _outputs()[script]
    assert "\x01failed" not in printed, printed[-3000:]  # the script itself raised
    got = dict(line.split(" ", 1) for line in printed.splitlines() if " " in line)
    assert set(expected) <= set(got), sorted(set(expected) - set(got))
    for name, start in expected.items():
        assert got[name].startswith(start), (name, got[name])
