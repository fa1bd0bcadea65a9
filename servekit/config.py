"""Server configuration: TorchServe's `config.properties`, resolved once into a typed `Config`.

Precedence (lowest first): built-in defaults < properties file (after `$$VAR$$` substitution) < CLI flags
< `TS_*` environment variables, the last only when the *file* says `enable_envvars_config=true`.
Every field remembers where its value came from in `Config.sources`. Imported by the frontend: no torch.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from servekit.errors import ConfigError
from servekit.properties import format_properties, parse_properties, substitute_env

__all__ = [
    "Config", "ConfigError", "Listener", "format_properties", "load_config", "parse_address",
    "parse_properties", "substitute_env",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
Converter = Callable[[str, str], Any]  # (key, raw string) -> typed value; raises ConfigError

# ------------------------------------------------------------------------------------------------- listeners
_DEFAULT_PORTS = {
    "inference": {"http": 80, "https": 443},
    "management": {"http": 8081, "https": 8444},
    "metrics": {"http": 8082, "https": 8445},
}
# Bracketed IPv6 hosts are a servekit extension; TorchServe's pattern cannot express them.
_TCP_ADDRESS = re.compile(r"(https?)://(\[[0-9A-Fa-f:.]+\]|[^:/\[\]\s]+)(?::(\d{1,5}))?", re.IGNORECASE)
_UNIX_ADDRESS = re.compile(r"unix:(/\S*)", re.IGNORECASE)


@dataclass(frozen=True)
class Listener:
    """One bind address. For `unix` listeners `host` is empty, `port` is 0 and `path` is the socket file."""

    scheme: str
    host: str
    port: int
    path: str | None = None

    @property
    def url(self) -> str:
        if self.scheme == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.scheme == "unix":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback  # 127.0.0.0/8 and ::1
        except ValueError:
            return self.host.lower() == "localhost"


def parse_address(value: str, kind: str) -> Listener:
    """Parse `(http|https)://HOST[:PORT]` or `unix:/path`; `kind` picks the default port."""
    if kind not in _DEFAULT_PORTS:
        raise ValueError(f"unknown listener kind {kind!r}")
    unix = _UNIX_ADDRESS.fullmatch(value)
    if unix:
        return Listener("unix", "", 0, unix.group(1))
    tcp = _TCP_ADDRESS.fullmatch(value)
    if not tcp:
        raise ConfigError(f"Invalid binding address: {value}")
    scheme, host, port_text = tcp.group(1).lower(), tcp.group(2).strip("[]"), tcp.group(3)
    port = int(port_text) if port_text else _DEFAULT_PORTS[kind][scheme]
    if port >= 65535:
        raise ConfigError(f"Invalid binding address: {value}")
    return Listener(scheme, host, port)


# ------------------------------------------------------------------------------------------------ converters
def _str(key: str, raw: str) -> str:
    return raw


def _bool(key: str, raw: str) -> bool:
    # Java's Boolean.parseBoolean: only "true" is true, typos are silently false. Surrounding blanks are
    # forgiven because a trailing space is invisible in an editor.
    return raw.strip().lower() == "true"


def _int(key: str, raw: str) -> int:
    # Strict like Java's Integer.parseInt: Python's int() would also take "1_000" or " 7 ".
    if not re.fullmatch(r"[+-]?\d+", raw.strip()):
        raise ConfigError(f"Invalid value for {key}: {raw}")
    return int(raw)


def _expiry_minutes(key: str, raw: str) -> float:
    try:
        minutes = float(raw)
    except ValueError:
        minutes = math.nan
    if not math.isfinite(minutes):
        log.error("Invalid %s value %r, using the default of 60 minutes", key, raw)
        return 60.0
    return minutes


def _address(key: str, raw: str) -> str:
    parse_address(raw, key.removesuffix("_address"))  # validate now so a bad address fails startup
    return raw


def _json_object(key: str, raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Invalid value for {key}: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"Invalid value for {key}: expected a JSON object")
    return value


def _url_list(key: str, raw: str) -> list[str]:
    return [pattern.strip() for pattern in raw.split(",") if pattern.strip()]


def _regex(key: str, raw: str) -> str:
    try:
        re.compile(raw)
    except re.error as exc:
        raise ConfigError(f"Invalid value for {key}: {raw} ({exc})") from None
    return raw


def _metrics_mode(key: str, raw: str) -> str:
    mode = re.sub(r"\s+", "", raw).lower()
    if mode in ("log", "prometheus", "legacy"):
        return mode
    log.error("Configured metrics mode %r not supported, defaulting to log", raw)
    return "log"


def _choice(*allowed: str, upper: bool = False) -> Converter:
    def convert(key: str, raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in allowed:
            raise ConfigError(f"Invalid value for {key}: {raw} (expected one of {', '.join(allowed)})")
        return value

    return convert


# ------------------------------------------------------------------------------------------------ the config
def _opt(default: T, convert: Converter, env: str | None = None, *, factory: bool = False) -> T:
    """A config field: its default, how to parse its string form, and its `TS_*` variable (if any)."""
    meta = {"convert": convert, "env": env}
    if factory:  # mutable defaults (lists, dicts) need a fresh copy per instance
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Config:
    """The resolved configuration. Field names are the property keys (see config.md §4)."""

    # Listeners (values kept as written; `listener()` gives the parsed form).
    inference_address: str = _opt("http://127.0.0.1:8080", _address, "TS_INFERENCE_ADDRESS")
    management_address: str = _opt("http://127.0.0.1:8081", _address, "TS_MANAGEMENT_ADDRESS")
    metrics_address: str = _opt("http://127.0.0.1:8082", _address, "TS_METRICS_ADDRESS")
    enable_metrics_api: bool = _opt(True, _bool, "TS_ENABLE_METRICS_API")
    certificate_file: str | None = _opt(None, _str, "TS_CERTIFICATE_FILE")
    private_key_file: str | None = _opt(None, _str, "TS_PRIVATE_KEY_FILE")
    # Models and stores.
    model_store: str | None = _opt(None, _str, "TS_MODEL_STORE")
    workflow_store: str | None = _opt(None, _str, "TS_WORKFLOW_STORE")  # None after load => model_store
    load_models: str | None = _opt(None, _str, "TS_LOAD_MODELS")
    models: dict[str, Any] = _opt({}, _json_object, factory=True)
    model_snapshot: dict[str, Any] | None = _opt(None, _json_object)
    default_workers_per_model: int = _opt(0, _int, "TS_DEFAULT_WORKERS_PER_MODEL")
    job_queue_size: int = _opt(100, _int, "TS_JOB_QUEUE_SIZE")
    default_response_timeout: int = _opt(120, _int, "TS_DEFAULT_RESPONSE_TIMEOUT")
    default_startup_timeout: int = _opt(120, _int, "TS_DEFAULT_STARTUP_TIMEOUT")
    unregister_model_timeout: int = _opt(120, _int, "TS_UNREGISTER_MODEL_TIMEOUT")
    default_service_handler: str | None = _opt(None, _str, "TS_DEFAULT_SERVICE_HANDLER")
    service_envelope: str | None = _opt(None, _str, "TS_SERVICE_ENVELOPE")
    decode_input_request: bool = _opt(True, _bool, "TS_DECODE_INPUT_REQUEST")
    limit_max_image_pixels: bool = _opt(True, _bool, "TS_LIMIT_MAX_IMAGE_PIXELS")
    install_py_dep_per_model: bool = _opt(False, _bool, "TS_INSTALL_PY_DEP_PER_MODEL")
    blacklist_env_vars: str | None = _opt(None, _regex, "TS_BLACKLIST_ENV_VARS")
    initial_worker_port: int = _opt(9000, _int, "TS_INITIAL_WORKER_PORT")
    # Configured cap only; the frontend takes min(detected, this). A `TS_NUMBER_OF_GPU` value is taken raw
    # (sources[...] == "env").
    number_of_gpu: int | None = _opt(None, _int, "TS_NUMBER_OF_GPU")
    cpp_log_config: str | None = _opt(None, _str, "TS_CPP_LOG_CONFIG")
    debug: bool = _opt(False, _bool, "TS_DEBUG")
    ts_header_key_sequence_id: str = _opt("ts_request_sequence_id", _str, "TS_HEADER_KEY_SEQUENCE_ID")
    ts_header_key_sequence_start: str = _opt("ts_request_sequence_start", _str, "TS_HEADER_KEY_SEQUENCE_START")
    ts_header_key_sequence_end: str = _opt("ts_request_sequence_end", _str, "TS_HEADER_KEY_SEQUENCE_END")
    # Security.
    disable_token_authorization: bool = _opt(False, _bool, "TS_DISABLE_TOKEN_AUTHORIZATION")
    token_expiration_min: float = _opt(60.0, _expiry_minutes, "TS_TOKEN_EXPIRATION_TIME_MIN")
    # Servekit difference: on by default, because the management token already guards these APIs.
    enable_model_api: bool = _opt(True, _bool, "TS_ENABLE_MODEL_API")
    allowed_urls: list[str] = _opt(["file://.*", "http(s)?://.*"], _url_list, "TS_ALLOWED_URLS", factory=True)
    use_env_allowed_urls: bool = _opt(False, _bool)
    max_request_size: int = _opt(6553500, _int, "TS_MAX_REQUEST_SIZE")
    max_response_size: int = _opt(6553500, _int, "TS_MAX_RESPONSE_SIZE")
    cors_allowed_origin: str | None = _opt(None, _str, "TS_CORS_ALLOWED_ORIGIN")
    cors_allowed_methods: str | None = _opt(None, _str, "TS_CORS_ALLOWED_METHODS")
    cors_allowed_headers: str | None = _opt(None, _str, "TS_CORS_ALLOWED_HEADERS")
    # Metrics and environment.
    metrics_mode: str = _opt("prometheus", _metrics_mode, "TS_METRICS_MODE")  # servekit default
    metrics_config: str | None = _opt(None, _str, "TS_METRICS_CONFIG")
    disable_system_metrics: bool = _opt(False, _bool, "TS_DISABLE_SYSTEM_METRICS")
    enable_envvars_config: bool = _opt(False, _bool)
    # Servekit-only knobs (no TS_* variable).
    worker_torch_threads: int = _opt(0, _int)  # torch threads per worker; 0 = cpus / workers
    batch_dispatch: str = _opt("adaptive", _choice("adaptive", "torchserve"))
    worker_start_method: str = _opt("fork", _choice("fork", "spawn"))
    log_level: str = _opt("INFO", _choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", upper=True))
    # Bookkeeping, not properties.
    config_file: str | None = None  # TorchServe's `tsConfigFile`
    sources: dict[str, str] = field(default_factory=dict)  # key -> "default" | "file:<abs path>" | "cli" | "env"
    extra: dict[str, str] = field(default_factory=dict)  # unknown / accepted-and-ignored keys, raw

    def listener(self, kind: str) -> Listener:
        """The parsed listener for "inference", "management" or "metrics"."""
        return parse_address(str(getattr(self, f"{kind}_address")), kind)

    def source(self, key: str) -> str:
        return self.sources.get(key, "default")

    def describe(self) -> list[tuple[str, str, str]]:
        """(key, value, source) for every setting, for `--show-config`."""
        rows = [(key, _render(getattr(self, key)), self.source(key)) for key in _FIELDS]
        rows += [(key, value, self.source(key)) for key, value in sorted(self.extra.items())]
        if self.config_file is not None:
            rows.append(("tsConfigFile", self.config_file, "cli"))
        return rows

    def to_properties(self) -> dict[str, str]:
        """Every effective setting as property strings (unset ones omitted), e.g. for a snapshot."""
        props = {key: _render(value) for key in _FIELDS if (value := getattr(self, key)) is not None}
        props.update(self.extra)
        if self.config_file is not None:
            props["tsConfigFile"] = self.config_file
        return props


_FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(Config) if f.metadata}
# Keys TorchServe lets the environment set that servekit keeps only as raw `extra` strings.
_EXTRA_ENV = {
    f"TS_{key.upper()}": key
    for key in (
        "number_of_netty_threads", "netty_client_threads", "model_metrics_auto_detect", "ipex_enable",
        "ipex_gpu_enable", "cpu_launcher_enable", "cpu_launcher_args", "keystore", "keystore_pass",
        "keystore_type", "model_server_home", "prefer_direct_buffer", "grpc_inference_address",
        "grpc_management_address", "grpc_inference_port", "grpc_management_port",
        "grpc_inference_max_connection_age_ms", "grpc_management_max_connection_age_ms",
        "grpc_inference_max_connection_age_grace_ms", "grpc_management_max_connection_age_grace_ms",
        "enable_grpc_ssl", "initial_distribution_port",
    )
} | {"TS_OPEN_INFERENCE_PROTOCOL": "ts_open_inference_protocol"}
_CLI_KEYS = ("model_store", "workflow_store", "load_models", "cpp_log_config")
_CLI_FLAGS = ("enable_model_api", "disable_token_authorization")  # can only switch on
_INTERNAL_KEYS = ("tsConfigFile",)  # written into snapshots; the real path is the one being loaded


def _render(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, dict):
        return json.dumps(value)
    return "" if value is None else str(value)


class _Builder:
    """Collects typed values and their sources layer by layer."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.sources: dict[str, str] = {key: "default" for key in _FIELDS}
        self.extra: dict[str, str] = {}

    def set(self, key: str, raw: str, source: str) -> None:
        if key in _FIELDS:
            self.values[key] = _FIELDS[key].metadata["convert"](key, raw)
        elif key in _INTERNAL_KEYS:
            return
        else:
            self.extra[key] = raw
        self.sources[key] = source


def _apply_file(builder: _Builder, path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--ts-config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}") from None
    props = {key: substitute_env(raw, environ) for key, raw in parse_properties(text).items()}
    source = f"file:{os.path.abspath(path)}"
    for key, raw in props.items():
        builder.set(key, raw, source)
    return props


def _apply_cli(builder: _Builder, cli: Mapping[str, object]) -> None:
    for key, value in cli.items():
        if key not in _CLI_KEYS + _CLI_FLAGS:
            raise ValueError(f"not a CLI configuration key: {key}")
        if value is None or value is False:
            continue  # an absent flag leaves the file value alone
        if key in _CLI_FLAGS:
            builder.set(key, "true", "cli")
        elif isinstance(value, (list, tuple)):
            builder.set(key, ",".join(str(item) for item in value), "cli")  # `--models a b` => "a,b"
        else:
            builder.set(key, str(value), "cli")


def _env_names(file_props: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    for key, spec in _FIELDS.items():
        env = spec.metadata["env"]
        if env and (key != "allowed_urls" or _bool(key, file_props.get("use_env_allowed_urls", ""))):
            yield env, key
    yield from _EXTRA_ENV.items()


def _apply_env(builder: _Builder, file_props: Mapping[str, str], environ: Mapping[str, str]) -> None:
    for env, key in _env_names(file_props):
        if env in environ:
            builder.set(key, environ[env], "env")


def load_config(
    config_file: str | Path | None,
    cli: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Resolve defaults < file < CLI < `TS_*` env (only if the file enables it) into a `Config`.

    `cli` accepts model_store, workflow_store, load_models (str or list), cpp_log_config and the
    flags enable_model_api / disable_token_authorization. Raises ConfigError with a user-facing message.
    """
    environ = os.environ if environ is None else environ
    builder = _Builder()
    file_props: dict[str, str] = {}
    if config_file is not None:
        file_props = _apply_file(builder, Path(config_file), environ)
    _apply_cli(builder, cli or {})
    if _bool("enable_envvars_config", file_props.get("enable_envvars_config", "")):
        _apply_env(builder, file_props, environ)
    config = Config(**builder.values, sources=builder.sources, extra=builder.extra)
    config.config_file = None if config_file is None else str(config_file)
    if config.workflow_store is None:
        config.workflow_store = config.model_store
    return config
