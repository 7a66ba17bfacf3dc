"""Each escape attempt from the restricted environment is refused with a clear remote error, and
the next request still gets the local result."""

# ruff: noqa: F841, S108  (the traces below bind values only to send them, and name system files)

import json
import pickle
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import nnsight
import pytest
import torch
from nnsight.intervention.backends.remote import RemoteError

import vrp
from tests.conftest import QUESTIONS, random_images

from .conftest import ServerProcess


@pytest.fixture(scope="module")
def vlm() -> vrp.VLM:
    return vrp.load("tiny/llava")


@pytest.fixture(scope="module")
def inputs(vlm: vrp.VLM) -> dict:
    return vlm.encode(random_images(1), QUESTIONS[:1]).data


@pytest.fixture(scope="module")
def expected(vlm: vrp.VLM, inputs: dict) -> torch.Tensor:
    with vlm.nnsight.trace(inputs):
        logits = vlm.nnsight.output.logits.save()
    return logits


def _import_os(model, inputs, url):
    with model.trace(inputs, remote=url):
        import os

        where = nnsight.save(os.getcwd())


def _import_subprocess(model, inputs, url):
    with model.trace(inputs, remote=url):
        import subprocess

        subprocess.run(["true"])


def _import_socket(model, inputs, url):
    with model.trace(inputs, remote=url):
        import socket

        socket.create_connection(("127.0.0.1", 9))


def _dunder_import(model, inputs, url):
    with model.trace(inputs, remote=url):
        os = __import__("os")


def _open_a_file(model, inputs, url):
    with model.trace(inputs, remote=url):
        text = nnsight.save(open("/etc/hostname").read())


def _eval(model, inputs, url):
    with model.trace(inputs, remote=url):
        value = nnsight.save(eval("1 + 1"))


def _exec(model, inputs, url):
    with model.trace(inputs, remote=url):
        exec("import os")


def _compile(model, inputs, url):
    with model.trace(inputs, remote=url):
        code = compile("1", "x", "eval")


def _environment_through_torch(model, inputs, url):
    with model.trace(inputs, remote=url):
        import torch

        env = nnsight.save(dict(torch.os.environ))


def _environment_through_getattr(model, inputs, url):
    with model.trace(inputs, remote=url):
        import torch

        hidden_os = getattr(torch, "o" + "s")
        env = nnsight.save(dict(getattr(hidden_os, "env" + "iron")))


def _file_through_torch_load(model, inputs, url):
    with model.trace(inputs, remote=url):
        import torch

        data = nnsight.save(torch.load("/etc/hostname"))


def _file_through_numpy(model, inputs, url):
    with model.trace(inputs, remote=url):
        import numpy

        data = nnsight.save(numpy.fromfile("/etc/hostname", dtype="uint8"))


def _file_through_nnsight_source_reader(model, inputs, url, secret: str):
    with model.trace(inputs, remote=url) as tracer:
        text = nnsight.save(tracer.source(secret))


def _private_attribute_of_the_model(model, inputs, url):
    with model.trace(inputs, remote=url):
        module = model._module


def _private_attribute_through_getattr(model, inputs, url):
    with model.trace(inputs, remote=url):
        module = getattr(model, "_mod" + "ule")


def _function_globals(model, inputs, url):
    with model.trace(inputs, remote=url):
        server_globals = (lambda: 0).__globals__


def _frames_of_the_server(model, inputs, url):
    with model.trace(inputs, remote=url) as tracer:
        frame_globals = tracer.info.frame.f_globals


def _generator_frame(model, inputs, url):
    with model.trace(inputs, remote=url):
        frame = (x for x in ()).gi_frame


def _format_string_traversal(model, inputs, url):
    with model.trace(inputs, remote=url):
        text = nnsight.save("{0.__class__}".format(model))  # noqa: UP030, UP032


def _hook_left_on_the_model(model, inputs, url):
    with model.trace(inputs, remote=url):
        model.model.language_model.layers[0].register_forward_hook(print)


def _weights_edited_in_place(model, inputs, url):
    with model.trace(inputs, remote=url):
        model.lm_head.weight.data.mul_(0)
        logits = model.output.logits.save()


def _module_saved_as_a_result(model, inputs, url):
    with model.trace(inputs, remote=url):
        head = nnsight.save(model.lm_head)


def _time_limit_swallowed(model, inputs, url):
    with model.trace(inputs, remote=url):
        logits = None
        try:
            logits = model.output.logits.save()
        except BaseException:
            pass


def _finalizer_defined(model, inputs, url):
    with model.trace(inputs, remote=url):

        class Sneaky:
            def __del__(self):
                pass

        keep = nnsight.save(Sneaky())


_ESCAPES: dict[str, tuple[Callable[..., None], str]] = {
    "import os": (_import_os, r"line \d+: import of 'os' is refused; allowed modules are torch"),
    "import subprocess": (_import_subprocess, r"import of 'subprocess' is refused"),
    "import socket": (_import_socket, r"import of 'socket' is refused"),
    "__import__": (_dunder_import, r"the name '__import__' is refused"),
    "open": (_open_a_file, r"the builtin open\(\) is not available"),
    "eval": (_eval, r"the builtin eval\(\) is not available"),
    "exec": (_exec, r"the builtin exec\(\) is not available"),
    "compile": (_compile, r"the builtin compile\(\) is not available"),
    "torch.os.environ": (_environment_through_torch, r"the attribute 'environ' is refused"),
    "getattr(torch, 'os')": (
        _environment_through_getattr,
        r"torch.os: import of 'os' is refused",
    ),
    "torch.load": (_file_through_torch_load, r"torch.load is refused \(it reaches files"),
    "numpy.fromfile": (_file_through_numpy, r"the attribute 'fromfile' is refused"),
    "model._module": (_private_attribute_of_the_model, r"the private attribute '_module'"),
    "getattr(model, '_module')": (
        _private_attribute_through_getattr,
        r"the private attribute '_module' is refused",
    ),
    "__globals__": (_function_globals, r"the private attribute '__globals__' is refused"),
    "frame globals": (_frames_of_the_server, r"the attribute 'f_globals' is refused"),
    "generator frame": (_generator_frame, r"the attribute 'gi_frame' is refused"),
    "format traversal": (_format_string_traversal, r"the attribute 'format' is refused"),
    "forward hook": (_hook_left_on_the_model, r"the attribute 'register_forward_hook'"),
    "weights edited": (
        _weights_edited_in_place,
        r"changed the hosted model \(the values of lm_head.weight\).*reloaded the model",
    ),
    "module as result": (
        _module_saved_as_a_result,
        r"holds an object of type Envoy, part of the hosted model's object graph",
    ),
    "except BaseException": (_time_limit_swallowed, r"would swallow the job's time limit"),
    "__del__": (_finalizer_defined, r"defining __del__ is refused"),
}


@pytest.mark.parametrize("name", list(_ESCAPES))
def test_escape_is_refused_and_the_server_stays_healthy(
    name: str, tiny_server: ServerProcess, vlm, inputs, expected
) -> None:
    attempt, message = _ESCAPES[name]
    with pytest.raises(RemoteError, match=message):
        attempt(vlm.nnsight, inputs, tiny_server.url)
    _check_healthy(vlm, inputs, expected, tiny_server)


def test_a_file_read_through_a_library_is_refused(
    tiny_server: ServerProcess, vlm, inputs, expected, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the launch code is 0000\n")
    with pytest.raises(RemoteError, match=r"Reading the file '.*secret.txt' is refused") as caught:
        _file_through_nnsight_source_reader(vlm.nnsight, inputs, tiny_server.url, str(secret))
    assert "launch code" not in str(caught.value)
    _check_healthy(vlm, inputs, expected, tiny_server)


def test_a_function_without_source_is_refused(
    tiny_server: ServerProcess, vlm, inputs, expected
) -> None:
    double = eval("lambda x: x * 2")  # no source file: nnsight ships its bytecode
    model = vlm.nnsight
    with pytest.raises(RemoteError, match=r"travels as bytecode, which does not run here"):
        with model.trace(inputs, remote=tiny_server.url):
            out = double(model.output.logits).save()
    _check_healthy(vlm, inputs, expected, tiny_server)


def _helper_that_scales(value):
    return value * 3


def test_a_helper_function_shipped_by_value_runs(tiny_server: ServerProcess, vlm, inputs) -> None:
    model = vlm.nnsight
    with model.trace(inputs, remote=tiny_server.url):
        tripled = _helper_that_scales(model.output.logits).save()
    with model.trace(inputs):
        local = _helper_that_scales(model.output.logits).save()
    assert torch.equal(tripled, local)


# ----- payloads that the nnsight client would never send -----------------------------------------
def _post(url: str, envelope: str, blob: bytes) -> httpx.Response:
    files = {"blob": ("request", blob, "application/octet-stream")}
    return httpx.post(f"{url}/request", data={"data": envelope}, files=files)


def _envelope(vlm: vrp.VLM) -> str:
    return json.dumps({"model_key": vlm.nnsight.to_model_key(), "compress": False})


def _final_status(url: str, job_id: str) -> dict:
    for _ in range(200):
        status = httpx.get(f"{url}/response/{job_id}").json()
        if status["status"] in ("COMPLETED", "ERROR"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


class _Gadget:
    def __reduce__(self):
        import os

        return (os.getcwd, ())  # harmless if the server ever ran it; it must not


def test_a_crafted_pickle_is_refused(tiny_server: ServerProcess, vlm, inputs, expected) -> None:
    blob = pickle.dumps(_Gadget())
    response = _post(tiny_server.url, _envelope(vlm), blob)
    assert response.status_code == 200
    status = _final_status(tiny_server.url, response.json()["id"])
    assert status["status"] == "ERROR"
    assert (
        "The payload names posix.getcwd, which this server does not load" in status["description"]
    )
    _check_healthy(vlm, inputs, expected, tiny_server)


@pytest.mark.parametrize(
    ("envelope", "blob", "answer", "message"),
    [
        ("not json", b"x", 400, r"The request envelope is malformed"),
        ('{"compress": false}', b"x", 400, r"The request envelope is malformed"),
        ('{"model_key": "no-colon"}', b"x", 400, r"is not an nnsight 0.8 key"),
        (
            '{"model_key": "m.TransformersModel:{\\"repo_id\\": \\"tiny/llava\\", \\"vrp\\": \\"0.0.1\\"}"}',
            b"x",
            400,
            r"The client runs VRP 0.0.1 and this server VRP",
        ),
    ],
)
def test_a_malformed_envelope_is_a_400(
    tiny_server: ServerProcess, envelope: str, blob: bytes, answer: int, message: str
) -> None:
    response = _post(tiny_server.url, envelope, blob)
    assert response.status_code == answer
    assert re.search(message, response.json()["detail"])


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"certainly not a pickle", r"The payload does not unpickle"),
        (pickle.dumps({"a": 1}), r"The payload is not an nnsight 0.8 trace"),
    ],
)
def test_a_malformed_payload_is_a_clear_error(
    tiny_server: ServerProcess, vlm, inputs, expected, blob: bytes, message: str
) -> None:
    response = _post(tiny_server.url, _envelope(vlm), blob)
    status = _final_status(tiny_server.url, response.json()["id"])
    assert status["status"] == "ERROR"
    assert re.search(message, status["description"])
    _check_healthy(vlm, inputs, expected, tiny_server)


def test_a_request_without_the_multipart_fields(tiny_server: ServerProcess) -> None:
    response = httpx.post(f"{tiny_server.url}/request", content=b"x")
    assert response.status_code == 400
    assert "multipart form with a 'data' field" in response.json()["detail"]


def _check_healthy(vlm: vrp.VLM, inputs: dict, expected: torch.Tensor, server: ServerProcess):
    model = vlm.nnsight
    with model.trace(inputs, remote=server.url):
        logits = model.output.logits.save()
    assert torch.equal(logits, expected), "the server's model no longer gives the local result"
