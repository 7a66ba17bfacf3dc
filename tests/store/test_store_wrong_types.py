"""Wrongly typed arguments to `ActivationStore` raise VRP errors for users, who run without the
jaxtyping hook that rejects them first under pytest (checked in a plain interpreter), and a
refused batch writes nothing."""

from tests.plain import check_plain_errors

_SCRIPT = """
import sys, tempfile
from pathlib import Path
import numpy as np
from vrp import VrpError
from vrp.store import ActivationStore

root = Path(tempfile.mkdtemp())
store = ActivationStore.create(root / "s", layers=[0, 1], d=4)
block = np.zeros((1, 2, 4), dtype=np.float32)
calls = {
    "width-text": lambda: ActivationStore.create(root / "a", layers=[0], d="4"),
    "layers-int": lambda: ActivationStore.create(root / "b", layers=5, d=4),
    "layers-float": lambda: ActivationStore.create(root / "c", layers=[1.5], d=4),
    "dtype-numpy": lambda: ActivationStore.create(root / "e", layers=[0], d=4, dtype=np.float16),
    "ids-float": lambda: store.append(block, sample_ids=[1.5]),
    "ids-bool": lambda: store.append(block, sample_ids=[True]),
    "ids-object": lambda: store.append(block, sample_ids=[object()]),
    "ids-string": lambda: store.append(np.zeros((3, 2, 4), dtype=np.float32), sample_ids="abc"),
    "ids-int": lambda: store.append(block, sample_ids=5),
    "layer-text": lambda: store.layer("0"),
    "layer-float": lambda: store.layer(0.0),
}
for name, call in calls.items():
    try:
        call()
        print(name, "no error")
    except VrpError as error:
        print(name, type(error).__name__, " ".join(str(error).split()))
reopened = ActivationStore.open(root / "s")
print("after-refused-batches", reopened.n, (root / "s" / "layer_000.bin").stat().st_size)
print("not-created", sorted(p.name for p in root.iterdir()))
"""

EXPECTED = {
    "width-text": "ConfigError need d >= 1, a whole number (the activation width); got d='4'",
    "layers-int": "ConfigError layers must be a sequence of model layer indices",
    "layers-float": "ConfigError need d >= 1 and distinct layers; got d=4, layers=[1.5]",
    "dtype-numpy": "ConfigError dtype must be one of ('float16', 'float32') (a string)",
    "ids-float": "DataError sample ids must be str or int; got 1.5 (float)",
    "ids-bool": "DataError sample ids must be str or int; got True (bool)",
    "ids-object": "DataError sample ids must be str or int; got <object object",
    "ids-string": "DataError sample_ids must be a list of str or int ids, one per row; got str",
    "ids-int": "DataError sample_ids must be a list of str or int ids, one per row; got int 5",
    "layer-text": "ConfigError layer must be an int model layer index; got '0' (str)",
    "layer-float": "ConfigError layer must be an int model layer index; got 0.0 (float)",
    "after-refused-batches": "0 0",
    "not-created": "['s']",
}


def test_wrong_types_raise_vrp_errors_and_write_nothing() -> None:
    check_plain_errors(_SCRIPT, EXPECTED)
