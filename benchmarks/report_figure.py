"""The README's report figure, and how long `vrp report` takes on the default run.

Run: ``OMP_NUM_THREADS=2 python benchmarks/report_figure.py [--run runs/study]``

Runs the default study into `--run` first if that folder holds no finished run (`vrp run`'s
defaults: the three organisms, every stage; about 3 minutes on 2 cores), then builds its report
into a temporary folder, prints the build time and the files' sizes, and copies the probe figure
(per-layer held-out AUROC with the shuffled-label band, per model) to
``docs/assets/report-probes.png``, the image the README shows.
"""

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURE = "probes"
TARGET = ROOT / "docs" / "assets" / "report-probes.png"


def ensure_run(run: Path) -> None:
    """Runs the default study into `run` unless a finished run is there already."""
    if (run / "manifest.json").is_file():
        return
    from vrp.study import config_from_mapping, run_study

    print(f"no finished run in {run}: running the default study (about 3 minutes on 2 cores)")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined C_k on the organisms' grid: in the report
        run_study(config_from_mapping({"out": run}))
    print(f"study: {time.perf_counter() - start:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "study")
    args = parser.parse_args()
    ensure_run(args.run)
    from vrp.report import build_report

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        files = build_report(args.run, Path(folder) / "report.html")
        seconds = time.perf_counter() - start
        print(f"vrp report: {seconds:.1f} s (reading the run, {len(files.tables)} tables, "
              f"{len(files.figures)} figures, writing)")  # fmt: skip
        sizes = {"report.html": files.html.stat().st_size, "report.md": files.markdown.stat().st_size,
                 "tables (CSV)": sum(p.stat().st_size for p in files.tables),
                 "figures (PNG)": sum(p.stat().st_size for p in files.figures)}  # fmt: skip
        for name, size in sizes.items():
            print(f"  {name:<14} {size / 1024:8.0f} KiB")
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files.folder / "figures" / f"{FIGURE}.png", TARGET)
    print(f"README figure: {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
