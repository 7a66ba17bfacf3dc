"""`vrp serve`: host models behind nnsight's remote protocol (see vrp.serve)."""

from pathlib import Path
from typing import Annotated

import typer

from ..core import VrpError
from ._app import app, fail


@app.command()
def serve(  # noqa: PLR0913  (each option of a CLI command is one argument)
    model: Annotated[
        list[str],
        typer.Option(
            help="A model to host (built-in name, checkpoint directory or Hub id); repeat."
        ),
    ],
    host: Annotated[
        str, typer.Option(help="Address to bind; non-loopback needs --api-key-file.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).")] = 8470,
    api_key_file: Annotated[
        Path | None, typer.Option(help="File with the accepted API keys, one per line.")
    ] = None,
    device: Annotated[
        str, typer.Option(help="Device of the hosted models (cpu, cuda, cuda:1).")
    ] = "cpu",
    dtype: Annotated[
        str | None,
        typer.Option(help="Weight dtype (float32, bfloat16); default: the checkpoint's."),
    ] = None,
    job_timeout: Annotated[float, typer.Option(help="Seconds a job may run.")] = 120.0,
    max_queue: Annotated[int, typer.Option(help="Jobs that may wait per model.")] = 64,
    max_request_mb: Annotated[float, typer.Option(help="Largest request body, in MB.")] = 64.0,
    max_result_mb: Annotated[float, typer.Option(help="Largest result, in MB.")] = 1024.0,
    result_ttl: Annotated[float, typer.Option(help="Seconds finished results are kept.")] = 600.0,
    executor: Annotated[
        str, typer.Option(help="Where the models live: 'local' or 'ray' (one Ray actor each).")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (default: start a local one).")
    ] = None,
    gpus_per_worker: Annotated[float, typer.Option(help="GPUs each model's actor reserves.")] = 0.0,
    cpus_per_worker: Annotated[int, typer.Option(help="CPUs (threads) of each model's actor.")] = 1,
) -> None:
    """Serve models to nnsight clients: model.trace(..., remote="http://HOST:PORT")."""
    from ..serve._config import ServeConfig, read_api_keys  # light: checked before any import

    try:
        config = ServeConfig(
            models=tuple(model),
            host=host,
            port=port,
            api_keys=read_api_keys(api_key_file) if api_key_file is not None else frozenset(),
            device=device,
            dtype=dtype,
            job_timeout_s=job_timeout,
            max_queue=max_queue,
            max_request_mb=max_request_mb,
            max_result_mb=max_result_mb,
            result_ttl_s=result_ttl,
            executor=executor,
            ray_address=address,
            gpus_per_worker=gpus_per_worker,
            cpus_per_worker=cpus_per_worker,
        )
        hosted = ", ".join(config.models)
        from ..serve import serve as run  # the web server and the models

        run(config, on_ready=lambda url: typer.echo(f"vrp serve: {hosted} on {url}", err=False))
    except VrpError as error:
        fail(error)
