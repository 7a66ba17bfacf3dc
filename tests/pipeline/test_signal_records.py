"""`BatchSignals.to_records`: one row per question holding every signal of that question."""

import warnings
from dataclasses import fields

from vrp.data import SyntheticConfig, generate
from vrp.pipeline import SampleSignals, SignalConfig, batch_signals


def test_batch_signal_records_are_one_row_per_question(tiny_vlms) -> None:
    dataset = generate(SyntheticConfig(n_per_split=2, n_counting=0, n_spatial=2, seed=1))
    samples = [s for s in dataset if s.split in ("adversarial", "spatial")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # C_k is undefined on a 4x4 grid: tested elsewhere
        result = batch_signals(tiny_vlms["llava"], samples, SignalConfig(samples=0))
    rows = result.to_records()
    assert len(rows) == len(samples)
    assert list(rows[0]) == [f.name for f in fields(SampleSignals)]
    assert [(r["split"], r["question_id"]) for r in rows] == [
        (s.split, s.question_id) for s in samples
    ]
    assert rows[2]["yes_no_margin"] == result.samples[2].yes_no_margin
