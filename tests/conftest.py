"""Shared fixtures: tiny random VLMs of every family and deterministic images."""

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vrp.models as models

torch.set_num_threads(1)


def random_images(n: int, size: int = 32, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)
    ]


QUESTIONS = (
    "is there a red circle ?",
    "how many blue square are there ?",
    "is the green triangle left of the yellow cross ?",
    "is there a cross in the image ?",
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default="cpu",
        help="device the model-level suites load their models on (cpu, cuda, cuda:1, ...)",
    )
    parser.addoption(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16"),
        help="weight dtype of the models the model-level suites load",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if str(config.getoption("--device")).startswith("cuda"):
        return
    skip = pytest.mark.skip(reason="needs CUDA: run with --device cuda")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> torch.device:
    """The device of `--device` (default cpu); CUDA is checked so a typo fails once, clearly."""
    chosen = torch.device(pytestconfig.getoption("--device"))
    if chosen.type == "cuda" and not torch.cuda.is_available():
        pytest.exit(f"--device {chosen} asks for CUDA, but torch sees no CUDA device.", 2)
    return chosen


@pytest.fixture(scope="session")
def dtype(pytestconfig: pytest.Config) -> torch.dtype:
    return getattr(torch, pytestconfig.getoption("--dtype"))


@pytest.fixture(scope="session")
def load_model(device: torch.device, dtype: torch.dtype):
    """Loads a model by name on the suite's device and dtype (`--device`, `--dtype`)."""

    def load(name: str, **kwargs) -> models.VLM:
        kwargs.setdefault("device", device)
        if dtype != torch.float32:
            kwargs.setdefault("dtype", dtype)
        return models.load(name, **kwargs)

    return load


@pytest.fixture(scope="session")
def tiny_vlms(load_model) -> dict[str, models.VLM]:
    return {family: load_model(f"tiny/{family}") for family in models.families()}


@pytest.fixture(params=models.families())
def vlm(request: pytest.FixtureRequest, tiny_vlms: dict[str, models.VLM]) -> models.VLM:
    return tiny_vlms[request.param]


@pytest.fixture
def vrp_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str]]:
    """Runs the `vrp` console script's entry point in this process, in folder `cwd`: its exit
    code and what it printed to stderr (tests/catalogue runs the installed script itself; a
    subprocess per error message would cost seconds of imports each)."""
    from vrp.cli import main

    def run(*args: str, cwd: Path) -> tuple[int, str]:
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["vrp", *args])
        monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # typer replaces it for good
        capsys.readouterr()
        try:
            main()
        except SystemExit as done:
            code = done.code
        else:
            code = None
        err = capsys.readouterr().err
        if isinstance(code, str):  # as the interpreter does: printed, exit status 1
            return 1, err + code + "\n"
        return (0 if code is None else code), err

    return run


@pytest.fixture
def trace_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of every trace `run_graph` runs from here on, in order (one entry per chunk)."""
    import vrp.interventions._execute as execute

    rows: list[int] = []
    real = execute._run_chunk

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        rows.append(len(args[4]))  # _run_chunk(vlm, graph, points, runs, rows, ...)
        return real(*args, **kwargs)

    monkeypatch.setattr(execute, "_run_chunk", counted)
    return rows
