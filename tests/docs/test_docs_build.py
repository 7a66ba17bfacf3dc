"""The documentation site builds strictly, covers the public API, and its Python examples run.

Code blocks marked ```python in docs/index.md and docs/guides/*.md run in order, page by page, each
block from its own file (nnsight reads a trace's source back from disk) with the page's earlier
blocks' names in scope, as a reader pasting them one after another would. They run in a plain
interpreter (this file, run as a script, forks one child per page): what a user gets, without the
jaxtyping import hook of the test session, which nnsight's serialising backend cannot re-import.
"""

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)
STUB = re.compile(r"^::: *([\w.]+)", flags=re.M)
API_MODULES = (
    "vrp",
    "vrp.core",
    "vrp.models",
    "vrp.interventions",
    "vrp.data",
    "vrp.signals",
    "vrp.probes",
    "vrp.stats",
    "vrp.store",
    "vrp.pipeline",
    "vrp.organisms",
    "vrp.study",
    "vrp.report",
    "vrp.serve",
    "circuits",
)


def example_pages() -> list[Path]:
    return [
        DOCS / "index.md",
        *sorted((DOCS / "guides").glob("*.md")),
        DOCS / "organisms" / "index.md",
    ]


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


# ----- the mkdocs build ----------------------------------------------------------------------------
def test_mkdocs_build_is_strict_clean(tmp_path: Path) -> None:
    if not all(importlib.util.find_spec(n) for n in ("mkdocs", "mkdocstrings", "material")):
        pytest.skip('the docs extra is not installed: pip install -e ".[docs]" to build the site')
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert (tmp_path / "site" / "api" / "interventions" / "index.html").is_file()


# ----- the API reference covers the public API ----------------------------------------------------
def _stubs() -> set[str]:
    return {m for page in (DOCS / "api").glob("*.md") for m in STUB.findall(page.read_text())}


def _public_names(module: ModuleType) -> list[str]:
    if hasattr(module, "__all__"):
        return list(module.__all__)
    # modules imported from elsewhere (or injected by an import hook) are not part of the API
    inside = module.__name__ + "."
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not (isinstance(value, ModuleType) and not value.__name__.startswith(inside))
    ]


def _documented(module_name: str, name: str, stubs: set[str]) -> bool:
    module = importlib.import_module(module_name)
    obj = getattr(module, name)
    if f"{module_name}.{name}" in stubs:
        return True
    if module_name in stubs and hasattr(module, "__all__") and module_name != "vrp":
        return True  # mkdocstrings renders every name of __all__
    home = getattr(obj, "__module__", None)
    if home in stubs and home != module_name:
        return True  # e.g. LlavaAdapter, documented with its module vrp.models.llava
    # the top-level namespace re-exports names documented where they are defined
    return module_name == "vrp" and any(f"{m}.{name}" in stubs for m in ("vrp.core", "vrp.models"))


@pytest.mark.parametrize("module_name", API_MODULES)
def test_api_reference_covers_every_public_name(module_name: str) -> None:
    module = importlib.import_module(module_name)
    stubs = _stubs()
    assert module_name in stubs, f"docs/api has no page with '::: {module_name}'"
    missing = [n for n in _public_names(module) if not _documented(module_name, n, stubs)]
    home = "vrp.core or vrp.models" if module_name == "vrp" else module_name
    assert not missing, (
        f"{module_name} exports {missing} but no docs/api/*.md page documents them: add a line "
        f"'::: <module>.<name>' for each to the page of {home}."
    )


def test_api_stubs_name_existing_objects() -> None:
    for stub in sorted(_stubs()):
        parts = stub.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for attr in parts[cut:]:
                assert hasattr(obj, attr), f"'::: {stub}' in docs/api names nothing: no {attr!r}"
                obj = getattr(obj, attr)
            break


# ----- the guides' Python examples run ------------------------------------------------------------
@pytest.fixture(scope="module")
def example_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Runs every page's blocks in one subprocess (one import of torch and transformers)."""
    work = tmp_path_factory.mktemp("doc_examples")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    pages = [str(p) for p in example_pages()]
    done = subprocess.run(
        [sys.executable, __file__, str(work), *pages],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("@@page "):
            record = json.loads(line.removeprefix("@@page "))
            results[record["page"]] = record
    assert results, (
        f"the example runner reported nothing:\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
    )
    return results


@pytest.mark.parametrize("page", example_pages(), ids=lambda p: p.relative_to(DOCS).as_posix())
def test_python_examples_run(page: Path, example_results: dict[str, dict]) -> None:
    record = example_results.get(str(page))
    assert record is not None, f"{page} was not run"
    assert record["error"] is None, (
        f"{page.relative_to(ROOT)}: python block {record['block']} (of {record['blocks']}) "
        f"failed:\n{record['source']}\n{record['error']}"
    )


def test_every_guide_has_examples() -> None:
    for page in example_pages():
        assert python_blocks(page), f"{page.relative_to(ROOT)} has no runnable ```python example"


# ----- the runner (executed as a script by example_results) ----------------------------------------
def _run_page(page: Path, work: Path) -> dict:
    import runpy
    import traceback
    import warnings

    blocks = python_blocks(page)
    folder = work / page.stem
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)  # files an example writes land in a scratch folder
    scope: dict = {}
    for index, source in enumerate(blocks, start=1):
        script = folder / f"block_{index}.py"
        script.write_text(source, encoding="utf-8")
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("error", module="__main__")  # examples warn about nothing
                scope = runpy.run_path(str(script), init_globals=scope, run_name="__main__")
        except BaseException:  # noqa: BLE001  (report any failure, then go on to the next page)
            error = traceback.format_exc(limit=-8)
            return {"page": str(page), "block": index, "blocks": len(blocks), "source": source,
                    "error": error}  # fmt: skip
    return {"page": str(page), "block": None, "blocks": len(blocks), "source": None, "error": None}


def _main(argv: list[str]) -> None:
    # Import the heavy third-party libraries once, then run each page in a forked child: pages
    # start from a clean vrp (and nnsight) state, as in a new interpreter, without paying for
    # torch and transformers again.
    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import torch
    import transformers

    for name in ("LlavaForConditionalGeneration", "PaliGemmaForConditionalGeneration",
                 "Qwen2VLForConditionalGeneration", "AutoProcessor"):  # fmt: skip
        getattr(transformers, name)
    torch.set_num_threads(1)
    work = Path(argv[0])
    for page in argv[1:]:
        sys.stdout.flush()
        if not hasattr(os, "fork"):  # no fork (Windows): pages share this interpreter
            print("@@page " + json.dumps(_run_page(Path(page), work)), flush=True)
            continue
        pid = os.fork()
        if pid == 0:
            try:
                record = _run_page(Path(page), work)
                print("@@page " + json.dumps(record), flush=True)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    _main(sys.argv[1:])
