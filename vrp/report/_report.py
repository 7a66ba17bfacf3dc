"""`build_report`: a run directory's tables and figures as one HTML page plus Markdown, CSV and
PNG files, from the run's files alone."""

from pathlib import Path
from typing import Any

from ._ablation import bypass_section, dims_section
from ._accuracy import accuracy_section
from ._doc import Document, Section
from ._lens import lens_section
from ._masking import masking_section, neurons_section
from ._patching import patching_section
from ._probes import probes_section
from ._published import published_section
from ._rundata import RunData, read_run
from ._signals import methods_section
from ._warnings import warnings_section
from ._write import ReportFiles, check_out, write_document

SECTIONS = (accuracy_section, methods_section, probes_section, lens_section, masking_section,
            neurons_section, dims_section, bypass_section, patching_section, published_section,
            warnings_section)  # fmt: skip
"""The report's sections in reading order; each takes the run and returns one `Section`."""


def run_facts(run: RunData) -> tuple[tuple[str, str], ...]:
    """What the run is: folder, models (with weight hashes), data, stages, seeds, versions."""
    config, manifest = run.config, run.manifest
    hashes = {m: str((manifest.get("models") or {}).get(m, {}).get("sha256", ""))[:12]
              for m in run.models}  # fmt: skip
    versions = manifest.get("versions") or {}
    machine = manifest.get("machine") or {}
    timings = manifest.get("timings") or {}
    seconds = sum(float(s) for by_stage in timings.values() for s in (by_stage or {}).values()
                  if isinstance(s, int | float))  # fmt: skip
    absent = [s for s in ("accuracy", "signals", "probes", "causal", "circuits")
              if s not in run.stages]  # fmt: skip
    return (
        ("run directory", str(run.root)),
        ("models", ", ".join(f"{m} (sha256 {h}...)" if h else m for m, h in hashes.items())),
        ("data", f"{config.get('data')}, n = {config.get('n')} per split"),
        ("stages", ", ".join(run.stages) + (f" (not run: {', '.join(absent)})" if absent else "")),
        ("seed", str(config.get("seed"))),
        ("self-consistency samples K", str(config.get("samples"))),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
        ("machine", f"{machine.get('device', '?')}, {machine.get('cpus', '?')} CPUs, "
                    f"{machine.get('gpu') or 'no GPU'}"),
        ("stage time (all models)", f"{seconds:.0f} s"),
        ("invocations", _invocations(manifest)),
    )  # fmt: skip


def _invocations(manifest: dict[str, Any]) -> str:
    """How many `vrp run` invocations made the run, and whether their versions agreed."""
    found = manifest.get("invocations")
    if not isinstance(found, list):
        return "not recorded"
    resumed = sum(bool(i.get("resumed")) for i in found if isinstance(i, dict))
    same = manifest.get("same_versions")
    tail = "" if same is not False else "; WARNING: invocations ran under different versions"
    return f"{len(found)} ({resumed} resumed){tail}"


def build_document(run: RunData) -> Document:
    """Every section of the report for `run`, in memory."""
    sections: list[Section] = [section(run) for section in SECTIONS]
    return Document(title=f"VRP study report: {run.root.name}", facts=run_facts(run),
                    sections=tuple(sections))  # fmt: skip


def build_report(run_dir: Path | str, out: Path | str | None = None) -> ReportFiles:
    """Builds the report of a finished run directory (no model is loaded).

    Args:
      run_dir: the folder `vrp run` wrote.
      out: the HTML file to write (default ``<run_dir>/report.html``); its Markdown goes beside
        it (``report.md``) and its CSV tables and PNG figures into ``report_files/``.

    Returns:
      The paths written.

    Raises:
      ConfigError: `run_dir` is not a run directory, or `out` is not an .html path.
      DataError: the run is unfinished or one of its files is unreadable. Nothing is written
        on any error.
    """
    target = check_out(Path(out) if out is not None else Path(run_dir) / "report.html")
    run = read_run(run_dir)
    return write_document(build_document(run), target)
