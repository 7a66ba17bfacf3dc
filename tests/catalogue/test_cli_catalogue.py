"""The bad-input catalogue of the command line: what a user sees, through the real entry point.

Every row runs `vrp.cli.main` (the function behind the `vrp` console script) with `sys.argv` set, and
must end with exit code 2, exactly one line ``error: ...`` on stderr, nothing on stdout, no
traceback, and none of the row's output paths created. Rows name paths relative to the test's
temporary folder as ``{tmp}/...``. The package's organism folder is swapped for a temporary one in
every row, so no row can touch a shipped organism.
"""

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

import vrp
from vrp.cli import main
from vrp.data import SyntheticConfig, write_benchmark

RECORD = {"question_id": 1, "image": "a.png", "text": "Is there a dog in the image?", "label": "no"}
SMALL = ("--n-per-split", "2", "--n-counting", "0", "--n-spatial", "0")


@dataclass(frozen=True, kw_only=True)
class CliCase:
    """A bad command line and the one-line error it must print.

    Attributes:
      id: short test id.
      args: the arguments after ``vrp``; ``{tmp}`` stands for the test's temporary folder.
      says: regular expressions the error line must all match.
      prepare: writes the files the row needs under the temporary folder.
      leaves: paths under the temporary folder that must not exist afterwards.
      read_only: the row runs as if no folder were writable (also when the tests run as root).
    """

    id: str
    args: tuple[str, ...]
    says: tuple[str, ...]
    prepare: Callable[[Path], object] | None = None
    leaves: tuple[str, ...] = field(default=())
    read_only: bool = False


# ----- files the rows need ------------------------------------------------------------------------
def _file(tmp: Path) -> None:
    (tmp / "afile").write_text("not a folder", encoding="utf-8")


def _pope(tmp: Path, content: bytes) -> None:
    (tmp / "img").mkdir()
    Image.new("RGB", (8, 8)).save(tmp / "img" / "a.png")
    (tmp / "pope.jsonl").write_bytes(content)


def _benchmark(tmp: Path) -> None:
    write_benchmark(SyntheticConfig(n_per_split=2, n_counting=0, n_spatial=0), tmp / "b")


def _bad_metadata(tmp: Path) -> None:
    (tmp / "b").mkdir()
    (tmp / "b" / "benchmark.json").write_text("{oops", encoding="utf-8")


def _model(family: str, corrupt: bool = False) -> Callable[[Path], None]:
    def prepare(tmp: Path) -> None:
        vrp.models.save(vrp.load(f"tiny/{family}"), tmp / "model")
        if corrupt:
            (tmp / "model" / "model.safetensors").write_bytes(b"not safetensors")

    return prepare


LINE = (json.dumps(RECORD) + "\n").encode()
TRAIN = ("organisms", "train", "--family", "llava", "--out", "{tmp}/run", "--no-progress")

CASES: tuple[CliCase, ...] = (
    # vrp data generate
    CliCase(
        id="generate-negative-seed",
        args=("data", "generate", "--out", "{tmp}/b", "--seed", "-1", *SMALL),
        says=(r"seed must be >= 0", r"got -1", r"seed=0"),
        leaves=("b",),
    ),
    CliCase(
        id="generate-out-under-a-file",
        args=("data", "generate", "--out", "{tmp}/afile/b", *SMALL),
        says=(r"cannot create the benchmark folder", r"afile is a file, not a folder", r"Choose"),
        prepare=_file,
    ),
    CliCase(
        id="generate-out-is-a-file",
        args=("data", "generate", "--out", "{tmp}/afile", *SMALL),
        says=(r"afile exists and is not a benchmark folder", r"refusing", r"Choose a new path"),
        prepare=_file,
    ),
    CliCase(
        id="generate-out-in-read-only-folder",
        args=("data", "generate", "--out", "{tmp}/ro/b", *SMALL),
        says=(r"cannot create the benchmark folder .*ro/b", r"ro is not writable", r"Choose"),
        prepare=lambda tmp: (tmp / "ro").mkdir(mode=0o555),
        leaves=("ro/b",),
        read_only=True,
    ),
    CliCase(
        id="generate-existing-without-overwrite",
        args=("data", "generate", "--out", "{tmp}/b", *SMALL),
        says=(r"already holds a benchmark", r"--overwrite"),
        prepare=_benchmark,
    ),
    CliCase(
        id="generate-odd-n-per-split",
        args=("data", "generate", "--out", "{tmp}/b", "--n-per-split", "3"),
        says=(r"n_per_split must be even and >= 2", r"got 3", r"Pass an even count"),
        leaves=("b",),
    ),
    CliCase(
        id="generate-odd-n-spatial",
        args=("data", "generate", "--out", "{tmp}/b", "--n-spatial", "7"),
        says=(r"n_spatial must be even", r"n_spatial=7", r"Pass 0 to skip"),
        leaves=("b",),
    ),
    CliCase(
        id="generate-zero-grid",
        args=("data", "generate", "--out", "{tmp}/b", "--grid", "0", *SMALL),
        says=(r"cells must be at least 8 px", r"grid of 0 cells", r"Pass grid >= 1"),
        leaves=("b",),
    ),
    CliCase(
        id="generate-huge-images",
        args=("data", "generate", "--out", "{tmp}/b", "--image-size", "100000", *SMALL),
        says=(r"image_size must be at most 4096", r"got 100000", r"image_size=336"),
        leaves=("b",),
    ),
    CliCase(
        id="generate-unknown-colour",
        args=("data", "generate", "--out", "{tmp}/b", "--colours", "red,mauve", *SMALL),
        says=(r"colours must be distinct names", r"Unknown: \['mauve'\]", r"Pick colours"),
        leaves=("b",),
    ),
    CliCase(
        id="generate-no-shapes",
        args=("data", "generate", "--out", "{tmp}/b", "--shapes", ",", *SMALL),
        says=(r"shapes must be distinct names", r"got \(\)", r"Pick shapes"),
        leaves=("b",),
    ),
    # vrp data stats / vocab
    CliCase(
        id="stats-missing-file",
        args=("data", "stats", "{tmp}/nope.jsonl"),
        says=(r"POPE file .*nope\.jsonl does not exist", r"Check the path"),
    ),
    CliCase(
        id="stats-empty-pope-file",
        args=("data", "stats", "{tmp}/pope.jsonl"),
        says=(r"pope\.jsonl holds no questions", r"expected JSON Lines or a JSON array"),
        prepare=lambda tmp: _pope(tmp, b""),
    ),
    CliCase(
        id="stats-pope-file-not-utf8",
        args=("data", "stats", "{tmp}/pope.jsonl"),
        says=(r"line 2: expected UTF-8 text", r"byte 0xe9", r"Re-save"),
        prepare=lambda tmp: _pope(tmp, LINE + "Is there a café?\n".encode("latin-1")),
    ),
    CliCase(
        id="stats-malformed-pope-line",
        args=("data", "stats", "{tmp}/pope.jsonl"),
        says=(r"line 2: not valid JSON", r"must be one object like"),
        prepare=lambda tmp: _pope(tmp, LINE + b"{oops\n"),
    ),
    CliCase(
        id="stats-missing-image-dir",
        args=("data", "stats", "{tmp}/pope.jsonl", "--image-dir", "{tmp}/nope"),
        says=(r"image folder .*nope of .* is not a folder", r"Pass image_dir="),
        prepare=lambda tmp: _pope(tmp, LINE),
    ),
    CliCase(
        id="stats-folder-without-benchmark",
        args=("data", "stats", "{tmp}"),
        says=(r"not a synthetic benchmark: benchmark\.json is missing", r"vrp data generate"),
    ),
    CliCase(
        id="vocab-missing-folder",
        args=("data", "vocab", "{tmp}/nope"),
        says=(r"nope does not exist or is not a folder", r"vrp data generate"),
    ),
    CliCase(
        id="vocab-malformed-metadata",
        args=("data", "vocab", "{tmp}/b"),
        says=(r"benchmark\.json line 1: not valid JSON", r"Regenerate the benchmark"),
        prepare=_bad_metadata,
    ),
    # vrp organisms train
    CliCase(
        id="train-zero-threads",
        args=(*TRAIN, "--threads", "0"),
        says=(r"--threads must be >= 1", r"got 0", r"--threads 2"),
        leaves=("run",),
    ),
    CliCase(
        id="train-zero-steps",
        args=(*TRAIN, "--steps", "0"),
        says=(r"--steps must be >= 1", r"got 0", r"Omit --steps"),
        leaves=("run",),
    ),
    CliCase(
        id="train-negative-seed",
        args=(*TRAIN, "--seed", "-1"),
        says=(r"--seed must be >= 0", r"got -1", r"--seed 0"),
        leaves=("run",),
    ),
    CliCase(
        id="train-negative-validate-every",
        args=(*TRAIN, "--validate-every", "-5"),
        says=(r"--validate-every must be >= 0", r"got -5", r"Pass 0 to skip"),
        leaves=("run",),
    ),
    CliCase(
        id="train-unknown-family",
        args=("organisms", "train", "--family", "gpt2", "--out", "{tmp}/run"),
        says=(r"No organism recipe for family 'gpt2'", r"llava"),
        leaves=("run",),
    ),
    CliCase(
        id="train-out-under-a-file",
        args=("organisms", "train", "--family", "llava", "--out", "{tmp}/afile/run"),
        says=(r"cannot create the run folder", r"afile is a file", r"Choose a path"),
        prepare=_file,
    ),
    CliCase(
        id="train-out-is-a-file",
        args=("organisms", "train", "--family", "llava", "--out", "{tmp}/afile"),
        says=(r"cannot create the run folder .*afile: a file is there", r"Choose another path"),
        prepare=_file,
    ),
    CliCase(
        id="train-resume-without-checkpoint",
        args=(*TRAIN, "--resume"),
        says=(r"Cannot resume: .*checkpoint\.pt does not exist", r"Run without --resume"),
        leaves=("run",),
    ),
    # vrp organisms evaluate / card / ship
    CliCase(
        id="evaluate-odd-n",
        args=("organisms", "evaluate", "llava", "--n", "3"),
        says=(r"n_per_split must be even", r"got 3", r"Pass an even count"),
    ),
    CliCase(
        id="evaluate-unknown-method",
        args=("organisms", "evaluate", "llava", "--method", "sample"),
        says=(r"method must be 'generate' or 'logits'", r"got 'sample'"),
    ),
    CliCase(
        id="evaluate-training-seed",
        args=("organisms", "evaluate", "llava", "--seed", "1000001"),
        says=(r"evaluation seed 1000001 is reserved for training data", r"Pick a seed in 0\.\."),
    ),
    CliCase(
        id="evaluate-negative-counting",
        args=("organisms", "evaluate", "llava", "--n", "2", "--n-counting", "-1"),
        says=(r"n_counting >= 0", r"n_counting=-1", r"Pass 0 to skip"),
    ),
    CliCase(
        id="card-unknown-organism",
        args=("organisms", "card", "gpt2"),
        says=(r"No organism 'gpt2'", r"organisms: llava, paligemma, qwen2_vl"),
    ),
    CliCase(
        id="card-write-odd-n",
        args=("organisms", "card", "llava", "--write", "--n", "3"),
        says=(r"n_per_split must be even", r"got 3"),
    ),
    CliCase(
        id="card-write-docs-under-a-file",
        args=("organisms", "card", "llava", "--write", "--docs", "{tmp}/afile/docs"),
        says=(r"cannot create the --docs folder", r"afile is a file", r"Choose a path"),
        prepare=_file,
    ),
    CliCase(
        id="ship-folder-without-model",
        args=("organisms", "ship", "{tmp}", "--family", "llava"),
        says=(r"holds no llava model: missing config\.json", r"`vrp organisms train`"),
        leaves=("assets",),
    ),
    CliCase(
        id="ship-missing-folder",
        args=("organisms", "ship", "{tmp}/nope", "--family", "llava"),
        says=(r"nope holds no llava model: it is not a folder", r"Pass the model/ folder"),
        leaves=("assets",),
    ),
    CliCase(
        id="ship-unknown-family",
        args=("organisms", "ship", "{tmp}", "--family", "gpt2"),
        says=(r"No organism 'gpt2'", r"llava, paligemma, qwen2_vl"),
        leaves=("assets",),
    ),
    CliCase(
        id="ship-wrong-family",
        args=("organisms", "ship", "{tmp}/model", "--family", "llava"),
        says=(r"holds no llava model \(config model_type 'qwen2_vl'\)", r"--family qwen2_vl"),
        prepare=_model("qwen2_vl"),
        leaves=("assets",),
    ),
    CliCase(
        id="ship-corrupt-weights",
        args=("organisms", "ship", "{tmp}/model", "--family", "llava"),
        says=(r"model holds no loadable llava model", r"failed \(\w+Error: ", r"Retrain"),
        prepare=_model("llava", corrupt=True),
        leaves=("assets/llava",),
    ),
    # vrp inspect
    CliCase(
        id="inspect-unknown-model",
        args=("inspect", "tiny/gpt2"),
        says=(r"Unknown model 'tiny/gpt2'",),
    ),
    CliCase(
        id="inspect-image-too-small",
        args=("inspect", "tiny/llava", "--image-size", "16"),
        says=(r"--image-size must be >= 32", r"got 16", r"--image-size 64"),
    ),
    CliCase(
        id="inspect-image-too-large",
        args=("inspect", "tiny/llava", "--image-size", "100000"),
        says=(r"image_size must be at most 4096", r"got 100000"),
    ),
)


def _run_main(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[object, str, str]:
    monkeypatch.setattr(sys, "argv", ["vrp", *args])
    capsys.readouterr()  # drop what preparing the row printed
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_command_line_prints_one_error_line_and_exits_2(
    case: CliCase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("vrp.organisms._card.ASSET_DIR", tmp_path / "assets")
    if case.read_only:  # root may write anywhere: make the permission check see the mode bits
        monkeypatch.setattr("vrp.data._files.os.access", lambda path, mode: False)
    if case.prepare is not None:
        case.prepare(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
    code, out, err = _run_main(args, monkeypatch, capsys)
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    assert out == "", f"{case.id}: wrote to stdout before failing: {out!r}"
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    for pattern in case.says:
        assert re.search(pattern, err), f"{case.id}: {pattern!r} not in {err!r}"
    for path in case.leaves:
        assert not (tmp_path / path).exists(), f"{case.id}: left {path} behind"


@pytest.mark.parametrize(
    "args",
    [
        ["data", "generate"],  # --out is required
        ["data", "generate", "--out", "x", "--seed", "1.5"],
        ["organisms", "train", "--family", "llava", "--threads", "many"],
        ["organisms", "ship"],
        ["inspect", "tiny/llava", "--image-size", "big"],
        ["data", "frobnicate"],
    ],
    ids=lambda a: " ".join(a),
)
def test_usage_errors_exit_2_without_a_traceback(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run_main(args, monkeypatch, capsys)
    assert code == 2 and "Traceback" not in out + err
    assert "Usage" in err or "Usage" in out


def test_the_console_script_path_prints_one_line(tmp_path: Path) -> None:
    """A fresh interpreter running what the `vrp` script runs, so nothing of pytest is in the way."""
    script = "import sys; sys.argv[0] = 'vrp'; from vrp.cli import main; main()"
    args = ["data", "generate", "--out", str(tmp_path / "b"), "--seed", "-1", *SMALL]
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: seed must be >= 0 (numpy seeds")
    assert not (tmp_path / "b").exists()
