"""`ServeConfig`: what `vrp serve` hosts, where it listens, who may call it and how much they may ask.

The safety rule lives here, in one place: a server bound to anything but a loopback address must
have API keys, because any host that can reach it could otherwise run code next to the model.
"""

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from ..core import ConfigError

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (127.0.0.0/8, ::1) or the name localhost."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """How `vrp serve` runs.

    Attributes:
      models: the VRP names (or checkpoint directories / Hub ids) of the hosted models; a client
        reaches one by loading the model under the same name (`vrp.load(name)`).
      host: the address to bind; anything but loopback needs `api_keys`.
      port: the TCP port (0: any free port, reported once the server is up).
      api_keys: the keys clients send in the `ndif-api-key` header; empty on loopback means open.
      device: where the hosted models' weights go ("cpu", "cuda", "cuda:1").
      dtype: weight dtype name ("float32", "bfloat16"); None keeps each checkpoint's.
      max_request_mb: largest request body accepted (the compressed payload plus its envelope).
      max_payload_mb: largest payload after decompression (guards against compression bombs).
      max_result_mb: largest result a job may send back (after compression).
      job_timeout_s: wall time a job may run once started (deserialising included).
      max_queue: jobs that may wait per model; further submissions are refused until one starts.
      result_ttl_s: how long a finished job's status and result stay retrievable.
      inline_result_mb: results up to this size travel in the websocket's COMPLETED frame;
        larger ones are fetched by the client from a one-time download URL.
      executor: where the models live: "local" (this process) or "ray" (one Ray actor each).
      ray_address: the Ray cluster to join ("auto", "ray://head:10001"); None starts a local one.
      gpus_per_worker: GPUs each model's actor reserves (executor "ray").
      cpus_per_worker: CPUs each model's actor reserves, and its torch threads (executor "ray").
    """

    models: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8470
    api_keys: frozenset[str] = field(default_factory=frozenset)
    device: str = "cpu"
    dtype: str | None = None
    max_request_mb: float = 64.0
    max_payload_mb: float = 256.0
    max_result_mb: float = 1024.0
    job_timeout_s: float = 120.0
    max_queue: int = 64
    result_ttl_s: float = 600.0
    inline_result_mb: float = 16.0
    executor: str = "local"
    ray_address: str | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: int = 1

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError(
                "vrp serve needs at least one model to host; got none. Pass --model NAME, e.g. "
                "--model organism/llava (repeat --model to host several)."
            )
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"models must be distinct; got {list(self.models)}.")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535 (0: any free port); got {self.port}.")
        if not is_loopback(self.host) and not self.api_keys:
            raise ConfigError(
                f"Refusing to listen on {self.host!r} without API keys: any host that reaches "
                "this address could run code next to the model. Pass --api-key-file FILE (one "
                "key per line), or bind a loopback address (--host 127.0.0.1)."
            )
        self._check_limits()
        self._check_executor()

    def _check_executor(self) -> None:
        if self.executor not in ("local", "ray"):
            raise ConfigError(f"executor: expected 'local' or 'ray', got {self.executor!r}.")
        if self.executor == "local" and (
            self.ray_address is not None or self.gpus_per_worker or self.cpus_per_worker != 1
        ):
            raise ConfigError(
                "--address, --gpus-per-worker and --cpus-per-worker place models on Ray actors: "
                "pass them with --executor ray."
            )
        if self.gpus_per_worker < 0 or self.cpus_per_worker < 1:
            raise ConfigError(
                f"expected gpus_per_worker >= 0 and cpus_per_worker >= 1; got "
                f"{self.gpus_per_worker} and {self.cpus_per_worker}."
            )

    def _check_limits(self) -> None:
        positive = {
            "max_request_mb": self.max_request_mb,
            "max_payload_mb": self.max_payload_mb,
            "max_result_mb": self.max_result_mb,
            "job_timeout_s": self.job_timeout_s,
            "result_ttl_s": self.result_ttl_s,
            "inline_result_mb": self.inline_result_mb,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{name} must be a positive number; got {value!r}.")
        if self.max_queue < 1:
            raise ConfigError(f"max_queue must be >= 1; got {self.max_queue}.")
        if any(not key or key != key.strip() for key in self.api_keys):
            raise ConfigError(
                "API keys must be non-empty and carry no surrounding whitespace; check the key file."
            )

    @property
    def requires_key(self) -> bool:
        """Whether requests must carry one of `api_keys` (always when any key is configured)."""
        return bool(self.api_keys)


def read_api_keys(path: str | Path) -> frozenset[str]:
    """The keys in `path`: one per line; blank lines and lines starting with '#' are skipped.

    Raises:
      ConfigError: the file cannot be read or holds no key.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"Cannot read the API key file {file} ({err}). Pass a UTF-8 text file with one key "
            "per line."
        ) from None
    keys = frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )
    if not keys:
        raise ConfigError(
            f"The API key file {file} holds no key. Write one key per line (e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)."
        )
    return keys
