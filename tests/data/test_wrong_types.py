"""Wrongly typed arguments to `vrp.data` raise VRP errors for users, who run without the jaxtyping
hook that rejects them first under pytest: checked in a plain interpreter."""

import subprocess
import sys

_SCRIPT = """
import math
from vrp import VrpError
from vrp.data import (SyntheticConfig, benchmark_stats, evaluate, generate, parse_pope_answer,
                      parse_count_answer, vocabulary)

ds = generate(SyntheticConfig(n_per_split=2, n_counting=0, n_spatial=0))
calls = {
    "slice": lambda: ds[0:2],
    "str-index": lambda: ds["0"],
    "float-batch": lambda: next(ds.batches(2.5)),
    "colours-string": lambda: SyntheticConfig(colours="red,blue"),
    "float-count": lambda: SyntheticConfig(n_per_split=4.0),
    "short-size-range": lambda: SyntheticConfig(size_range=(0.6,)),
    "config-not-config": lambda: generate("default"),
    "vocab-not-config": lambda: vocabulary({"seed": 0}),
    "stats-of-a-list": lambda: benchmark_stats(list(ds.questions)),
    "parse-none": lambda: parse_pope_answer(None),
    "count-none": lambda: parse_count_answer(None),
    "answers-none": lambda: evaluate(ds.questions, [None] * len(ds)),
}
for name, call in calls.items():
    try:
        call()
        print(name, "no error")
    except VrpError as error:
        print(name, type(error).__name__, error)
try:
    ds[len(ds)]
except IndexError as error:
    print("past-the-end", type(error).__name__, error)
"""

EXPECTED = {
    "slice": "ConfigError dataset index must be an integer; got slice",
    "str-index": "ConfigError dataset index must be an integer; got str '0'",
    "float-batch": "ConfigError batch_size must be an integer >= 1; got 2.5",
    "colours-string": "ConfigError colours must be a tuple of names",
    "float-count": "ConfigError n_per_split must be an integer; got 4.0",
    "short-size-range": "ConfigError size_range must be a tuple of 2 finite numbers",
    "config-not-config": "ConfigError config must be a vrp.data.SyntheticConfig; got str",
    "vocab-not-config": "ConfigError config must be a vrp.data.SyntheticConfig or None; got dict",
    "stats-of-a-list": "DataError expected a vrp.data.Dataset (questions, scenes, samples); got list",
    "parse-none": "DataError expected a model's raw answer as a string; got NoneType",
    "count-none": "DataError expected a model's raw answer as a string; got NoneType",
    "answers-none": "DataError answers must be the model's raw text; answer 0 is None",
    "past-the-end": "IndexError index 6 out of range for a dataset of 6 samples",
}


def test_wrong_types_raise_vrp_errors_in_a_plain_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    got = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert set(got) == set(EXPECTED)
    for name, start in EXPECTED.items():
        assert got[name].startswith(start), (name, got[name])
