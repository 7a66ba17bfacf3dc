"""The public surface of `vrp.signals`: documented, re-exported from private modules, model-free."""

import inspect
import subprocess
import sys

import vrp
import vrp.core
import vrp.signals


def _public() -> dict[str, object]:
    return {
        name: getattr(vrp.signals, name) for name in dir(vrp.signals) if not name.startswith("_")
    }


def test_public_names_come_from_private_modules_and_are_documented() -> None:
    for name, obj in _public().items():
        if inspect.ismodule(obj):
            continue
        module = getattr(obj, "__module__", "")
        if module.startswith("vrp.signals"):
            assert module.split(".")[-1].startswith("_"), f"{name} lives in public {module}"
            assert inspect.getdoc(obj), f"{name} has no docstring"


def test_public_functions_document_args_and_returns() -> None:
    for name, obj in _public().items():
        if inspect.isfunction(obj):
            doc = inspect.getdoc(obj) or ""
            assert "Args:" in doc and "Returns:" in doc, f"{name} lacks Args/Returns"


def test_importing_signals_pulls_in_no_model_library() -> None:
    code = (
        "import sys, vrp.signals; "
        "print(sorted(m for m in ('transformers', 'nnsight') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_signal_error_is_the_core_class_re_exported() -> None:
    assert vrp.signals.SignalError is vrp.core.SignalError is vrp.SignalError
    assert issubclass(vrp.signals.SignalError, vrp.core.VrpError)
    assert issubclass(vrp.signals.SignalError, ValueError)
