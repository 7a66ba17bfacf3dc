"""The public surface: every exported name exists, and the core never imports transformers."""

import subprocess
import sys

import vrp


def test_every_name_in_all_exists() -> None:
    for name in vrp.__all__:
        assert getattr(vrp, name) is not None, name


def test_core_does_not_import_transformers_or_nnsight() -> None:
    code = (
        "import sys, vrp, vrp.core; "
        "bad = [m for m in ('transformers', 'nnsight') if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"vrp.core imported {result.stdout.strip()}"


def test_save_and_submodules_resolve_after_nnsight_is_imported(tmp_path) -> None:
    import nnsight  # noqa: F401  (gives every object a `save` attribute)

    assert vrp.save.__module__ == "vrp"
    vlm = vrp.load("tiny/llava")
    vrp.save(vlm, tmp_path)
    assert vrp.load(tmp_path).family == "llava"
    assert vrp.models.builtin_names()[0].startswith("tiny/")
