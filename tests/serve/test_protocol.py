"""The plain nnsight 0.8.1 client against `vrp serve`: every protocol path gives local results."""

import threading

import httpx
import nnsight
import pytest
import torch
from nnsight.intervention.backends.remote import RemoteBackend, RemoteError

import vrp
import vrp.models
from tests.conftest import QUESTIONS, random_images

from .conftest import ServerProcess


@pytest.fixture(scope="module")
def vlm() -> vrp.VLM:
    return vrp.load("tiny/llava")


@pytest.fixture(scope="module")
def inputs(vlm: vrp.VLM) -> dict:
    return vlm.encode(random_images(2), QUESTIONS[:2]).data


def test_saved_activations_equal_local(tiny_server: ServerProcess, vlm, inputs) -> None:
    model = vlm.nnsight
    with model.trace(inputs, remote=tiny_server.url):
        hidden = model.model.language_model.layers[1].output.save()
        logits = model.output.logits.save()
    with model.trace(inputs):
        local_hidden = model.model.language_model.layers[1].output.save()
        local_logits = model.output.logits.save()
    assert hidden.shape == (2, local_hidden.shape[1], 32)
    assert torch.equal(hidden, local_hidden)
    assert torch.equal(logits, local_logits)


def test_cross_invoke_patching_equals_local(tiny_server: ServerProcess, vlm) -> None:
    model = vlm.nnsight
    clean = dict(vlm.tokenizer(["is there a red circle ?"], return_tensors="pt"))
    corrupt = dict(vlm.tokenizer(["is there a blue square ?"], return_tensors="pt"))
    results = []
    for remote in (tiny_server.url, False):
        with model.trace(remote=remote) as tracer:
            barrier = tracer.barrier(2)
            with tracer.invoke(clean):
                source = model.model.language_model.layers[0].output[:, -1]
                barrier()
            with tracer.invoke(corrupt):
                barrier()
                model.model.language_model.layers[0].output[:, -1] = source
                patched = model.output.logits[:, -1].save()
        results.append(patched)
    assert torch.equal(results[0], results[1])
    with model.trace(corrupt):
        unpatched = model.output.logits[:, -1].save()
    assert not torch.equal(results[0], unpatched)


def test_a_session_of_two_traces(tiny_server: ServerProcess, vlm, inputs) -> None:
    model = vlm.nnsight
    runs = []
    for remote in (tiny_server.url, False):
        with model.session(remote=remote):
            with model.trace(inputs):
                first = model.model.language_model.layers[0].output.save()
            with model.trace(inputs):
                model.model.language_model.layers[0].output[:] = first * 2
                second = model.output.logits.save()
        runs.append((first, second))
    assert torch.equal(runs[0][0], runs[1][0])
    assert torch.equal(runs[0][1], runs[1][1])


def test_generation_with_iteration(tiny_server: ServerProcess, vlm, inputs) -> None:
    model = vlm.nnsight
    runs = []
    for remote in (tiny_server.url, False):
        with model.generate(inputs, max_new_tokens=3, remote=remote) as tracer:
            steps = nnsight.save([])
            for _ in tracer.iter[:3]:
                steps.append(model.lm_head.output[:, -1].argmax(-1))
            tokens = tracer.result.save()
        runs.append((torch.stack(steps), tokens))
    assert runs[0][0].shape == (3, 2)
    assert torch.equal(runs[0][0], runs[1][0])
    assert torch.equal(runs[0][1], runs[1][1])


def test_non_blocking_submit_then_poll(tiny_server: ServerProcess, vlm, inputs) -> None:
    model = vlm.nnsight
    with model.trace(inputs, remote=tiny_server.url, blocking=False) as tracer:
        hidden = model.model.language_model.layers[0].output.save()
    backend = tracer.backend
    assert isinstance(backend, RemoteBackend) and backend.job_id
    result = None
    for _ in range(200):
        result = backend()  # polls GET /response/{id}; None until COMPLETED
        if result is not None:
            break
        threading.Event().wait(0.05)
    assert result is not None, f"job {backend.job_id} did not complete"
    with model.trace(inputs):
        hidden = model.model.language_model.layers[0].output.save()
    assert torch.equal(result["hidden"], hidden)


def test_a_server_side_error_is_a_remote_error_with_its_traceback(
    tiny_server: ServerProcess, vlm, inputs
) -> None:
    model = vlm.nnsight
    with pytest.raises(RemoteError) as caught:
        with model.trace(inputs, remote=tiny_server.url):
            hidden = model.model.language_model.layers[0].output
            bad = hidden[:, :, 10_000].save()  # noqa: F841
    text = str(caught.value)
    assert "IndexError" in text and "index 10000 is out of bounds" in text
    assert "bad = hidden[:, :, 10000].save()" in text  # the client's line (as nnsight ships it)
    with model.trace(inputs, remote=tiny_server.url):  # and the server carries on
        fine = model.model.language_model.layers[0].output.save()
    assert fine.shape[0] == 2


def test_print_inside_a_trace_arrives_as_log_frames(
    tiny_server: ServerProcess, vlm, inputs, capsys: pytest.CaptureFixture[str]
) -> None:
    model = vlm.nnsight
    nnsight.CONFIG.APP.REMOTE_LOGGING = True  # the status display prints LOG frames
    with model.trace(inputs, remote=tiny_server.url):
        hidden = model.model.language_model.layers[0].output
        print("hidden has shape", tuple(hidden.shape))
    out = capsys.readouterr().out
    assert "LOG" in out and "hidden has shape (2," in out


def test_attention_implementation_follows_the_client(tiny_server: ServerProcess, inputs) -> None:
    sdpa = vrp.load("tiny/llava", attn_implementation="sdpa")
    model = sdpa.nnsight
    with model.trace(inputs, remote=tiny_server.url):
        weights = model.model.language_model.layers[0].self_attn.output[1].save()
    assert weights is None  # sdpa returns no attention weights: the server switched
    eager = vrp.load("tiny/llava", attn_implementation="eager").nnsight
    with eager.trace(inputs, remote=tiny_server.url):
        weights = eager.model.language_model.layers[0].self_attn.output[1].save()
    assert weights is not None and weights.shape[:2] == (2, 4)  # and switched back


def test_eight_concurrent_clients_get_their_own_results(tiny_server: ServerProcess) -> None:
    families = ["llava", "paligemma", "qwen2_vl", "llava"] * 2
    clients = [vrp.load(f"tiny/{f}") for f in families]
    jobs = []
    for i, client in enumerate(clients):
        data = client.encode(random_images(1 + i % 2, seed=i), QUESTIONS[: 1 + i % 2]).data
        layer = i % 2
        with client.nnsight.trace(data):
            expected = client.nnsight.model.language_model.layers[layer].output.save()
        jobs.append((client, data, layer, expected))
    results: dict[int, object] = {}

    def run(i: int) -> None:
        client, data, layer, _ = jobs[i]
        try:
            with client.nnsight.trace(data, remote=tiny_server.url):
                got = client.nnsight.model.language_model.layers[layer].output.save()
            results[i] = got
        except Exception as error:  # noqa: BLE001  (reported by the assertion below)
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for i, (_, _, _, expected) in enumerate(jobs):
        got = results.get(i)
        assert isinstance(got, torch.Tensor), f"client {i}: {got!r}"
        assert torch.equal(got, expected), f"client {i} got another client's result"


def test_health_and_model_list(tiny_server: ServerProcess) -> None:
    health = httpx.get(f"{tiny_server.url}/health").json()
    assert health["status"] == "ok"
    assert set(health["models"]) == {f"tiny/{f}" for f in vrp.models.families()}
    models = {m["name"]: m for m in httpx.get(f"{tiny_server.url}/models").json()}
    assert models["tiny/llava"]["family"] == "llava"
    assert models["tiny/llava"]["model_key"] == vrp.load("tiny/llava").nnsight.to_model_key()


def test_a_model_the_server_does_not_host(tiny_server: ServerProcess, tmp_path) -> None:
    vlm = vrp.load("tiny/llava")
    vrp.models.save(vlm, tmp_path / "mine")
    mine = vrp.load(str(tmp_path / "mine"))
    data = mine.encode(random_images(1), QUESTIONS[:1]).data
    with pytest.raises(RemoteError, match=r"is not hosted here; this server hosts tiny/llava"):
        with mine.nnsight.trace(data, remote=tiny_server.url):
            mine.nnsight.output.logits.save()


def test_a_large_result_is_downloaded_from_its_link(vlm, inputs) -> None:
    # in this process (vrp.serve.Server, as the docs use it), with results above 1 kB sent as a
    # download link in the COMPLETED frame rather than inside it
    from vrp.serve import ServeConfig, Server

    config = ServeConfig(models=("tiny/llava",), port=0, inline_result_mb=0.001)
    model = vlm.nnsight
    with Server(config) as server:
        with model.trace(inputs, remote=server.url):
            logits = model.output.logits.save()
    with model.trace(inputs):
        local = model.output.logits.save()
    assert logits.numel() * 4 > 1000
    assert torch.equal(logits, local)


def test_gradients_inside_a_trace(tiny_server: ServerProcess, vlm, inputs) -> None:
    model = vlm.nnsight
    grads = []
    for remote in (tiny_server.url, False):
        with model.trace(inputs, remote=remote):
            first = model.model.language_model.layers[0].output
            second = model.model.language_model.layers[1].output
            loss = model.output.logits[:, -1].sum()
            with loss.backward():  # gradients are requested in reverse order
                late = second.grad.save()
                early = first.grad.save()
        grads.append((late, early))
        vlm.hf.zero_grad(set_to_none=True)
    assert grads[0][1].shape == (2, grads[1][1].shape[1], 32)
    assert torch.equal(grads[0][0], grads[1][0])
    assert torch.equal(grads[0][1], grads[1][1])
