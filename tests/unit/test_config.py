from __future__ import annotations

import logging
from pathlib import Path

import pytest

from servekit.config import (
    Config,
    Listener,
    format_properties,
    load_config,
    parse_address,
    parse_properties,
    substitute_env,
)
from servekit.errors import ConfigError


@pytest.fixture
def write_config(tmp_path: Path):
    def write(text: str) -> Path:
        path = tmp_path / "config.properties"
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --------------------------------------------------------------------------------------- properties syntax
@pytest.mark.parametrize(
    "line, key, value",
    [
        ("a=1", "a", "1"),
        ("a: 1", "a", "1"),
        ("a 1", "a", "1"),
        ("  a   =   1", "a", "1"),
        ("a\t:\t1", "a", "1"),
        ("a = = 1", "a", "= 1"),
        ("a==1", "a", "=1"),
        ("a", "a", ""),
        ("a=", "a", ""),
        ("a=1  ", "a", "1  "),  # trailing blanks belong to the value, as in Java
        ("e\\:f\\=g\\ h=v", "e:f=g h", "v"),
        ("k=\\#\\!\\\\\\t\\n\\r\\f", "k", "#!\\\t\n\r\f"),
        ("k=\\u0041\\u00e9", "k", "A\u00e9"),
        ("k=\\q", "k", "q"),  # an unknown escape just drops the backslash
    ],
)
def test_parse_properties_line(line: str, key: str, value: str) -> None:
    assert parse_properties(line + "\n") == {key: value}


def test_parse_properties_comments_blank_lines_and_duplicates() -> None:
    text = "# comment\n! also a comment\n\n   \n  #x=1\na=1\r\nb=2\ra=3"
    assert parse_properties(text) == {"a": "3", "b": "2"}


def test_comment_line_does_not_continue() -> None:
    assert parse_properties("# comment \\\nk=v\n") == {"k": "v"}


def test_continuation_drops_leading_whitespace_and_needs_odd_backslashes() -> None:
    text = "a=one\\\n      two\nb=even\\\\\nc=three\\\\\\\n   four\n"
    assert parse_properties(text) == {"a": "onetwo", "b": "even\\", "c": "three\\four"}


def test_continuation_at_end_of_file_and_before_blank_line() -> None:
    assert parse_properties("a=x\\") == {"a": "x"}
    assert parse_properties("a=x\\\n\nb=y") == {"a": "x", "b": "y"}


def test_malformed_unicode_escape() -> None:
    with pytest.raises(ConfigError):
        parse_properties("a=\\u12")


def test_multiline_models_json_and_escaped_urls(write_config) -> None:
    path = write_config(
        "inference_address=https\\://127.0.0.1\\:8443\n"
        "models={\\\n"
        '  "noop": {\\\n'
        '    "1.0": {\\\n'
        '        "defaultVersion": true,\\\n'
        '        "marName": "noop.mar",\\\n'
        '        "minWorkers": 1,\\\n'
        '        "batchSize": 4\\\n'
        "    }\\\n"
        "  }\\\n"
        "}\n"
    )
    config = load_config(path, environ={})
    assert config.inference_address == "https://127.0.0.1:8443"
    assert config.listener("inference") == Listener("https", "127.0.0.1", 8443)
    version = {"defaultVersion": True, "marName": "noop.mar", "minWorkers": 1, "batchSize": 4}
    assert config.models == {"noop": {"1.0": version}}


def test_format_properties_round_trips() -> None:
    props = {"a b": " lead", "url": "https://x:1", "json": '{"a": 1}\n', "odd": "#!=:\\\t\u00e9"}
    text = format_properties(props, comments=["Saving snapshot"])
    assert text.startswith("#Saving snapshot\n")
    assert "url=https\\://x\\:1" in text
    assert parse_properties(text) == props


# ------------------------------------------------------------------------------------------- substitution
def test_substitute_env() -> None:
    env = {"HOME_DIR": "/srv", "PORT": "9"}
    assert substitute_env("$$HOME_DIR$$/store:$$PORT$$", env) == "/srv/store:9"
    for literal in ("no refs", "$$a$$", "$$$$", "$$HOME_DIR", "$HOME_DIR$"):  # names need >= 2 chars
        assert substitute_env(literal, env) == literal


def test_substitute_env_unset() -> None:
    with pytest.raises(ConfigError, match="^Invalid Environment Variable MISSING$"):
        substitute_env("$$MISSING$$", {})


def test_file_values_are_substituted_before_overrides(write_config) -> None:
    path = write_config("model_store=$$STORE$$\njob_queue_size=$$QUEUE$$\n")
    config = load_config(path, environ={"STORE": "/models", "QUEUE": "7"})
    assert (config.model_store, config.job_queue_size) == ("/models", 7)
    with pytest.raises(ConfigError, match="Invalid Environment Variable QUEUE"):
        load_config(path, environ={"STORE": "/models"})


# ---------------------------------------------------------------------------------------------- addresses
@pytest.mark.parametrize(
    "value, kind, expected",
    [
        ("http://127.0.0.1:8080", "inference", Listener("http", "127.0.0.1", 8080)),
        ("HTTP://0.0.0.0", "inference", Listener("http", "0.0.0.0", 80)),
        ("https://localhost", "inference", Listener("https", "localhost", 443)),
        ("http://host", "management", Listener("http", "host", 8081)),
        ("https://host", "management", Listener("https", "host", 8444)),
        ("http://host", "metrics", Listener("http", "host", 8082)),
        ("https://host", "metrics", Listener("https", "host", 8445)),
        ("http://[::1]:9000", "metrics", Listener("http", "::1", 9000)),
        ("unix:/tmp/ts.sock", "inference", Listener("unix", "", 0, "/tmp/ts.sock")),
    ],
)
def test_parse_address(value: str, kind: str, expected: Listener) -> None:
    assert parse_address(value, kind) == expected


@pytest.mark.parametrize(
    "value",
    ["127.0.0.1:8080", "ftp://host:1", "http://host:65535", "http://host:port", "http://host:80/path",
     "unix:relative.sock", "http://", "http://host:8080 extra", ""],
)
def test_parse_address_invalid(value: str) -> None:
    with pytest.raises(ConfigError, match=f"^Invalid binding address: {value}$"):
        parse_address(value, "inference")


def test_listener_url_and_loopback() -> None:
    assert parse_address("HTTPS://[::1]", "management").url == "https://[::1]:8444"
    assert parse_address("unix:/run/a.sock", "metrics").url == "unix:/run/a.sock"
    loopback = ["http://127.0.0.5", "http://localhost", "http://[::1]", "unix:/x"]
    assert all(parse_address(value, "inference").is_loopback for value in loopback)
    assert not parse_address("http://0.0.0.0", "inference").is_loopback
    assert not parse_address("http://10.1.2.3", "inference").is_loopback
    assert not parse_address("http://127.example.com", "inference").is_loopback


def test_invalid_address_fails_at_load_time(write_config) -> None:
    with pytest.raises(ConfigError, match="Invalid binding address: tcp://x"):
        load_config(write_config("management_address=tcp://x\n"), environ={})


# --------------------------------------------------------------------------------------------- precedence
def test_defaults() -> None:
    config = load_config(None, environ={})
    assert config == Config(sources=config.sources)
    assert config.inference_address == "http://127.0.0.1:8080"
    assert config.allowed_urls == ["file://.*", "http(s)?://.*"]
    assert config.metrics_mode == "prometheus" and config.enable_model_api is True
    assert config.models == {} and config.model_snapshot is None and config.number_of_gpu is None
    assert config.token_expiration_min == 60.0 and config.ts_header_key_sequence_end == "ts_request_sequence_end"
    assert set(config.sources.values()) == {"default"}
    assert config.config_file is None and config.workflow_store is None


def test_mutable_defaults_are_not_shared() -> None:
    first, second = Config(), Config()
    first.allowed_urls.append("x")
    first.models["m"] = {}
    assert second.allowed_urls == ["file://.*", "http(s)?://.*"] and second.models == {}


def test_file_beats_default_and_cli_beats_file(write_config) -> None:
    path = write_config("model_store=/file/store\njob_queue_size=5\nload_models=a.mar\n")
    config = load_config(path, cli={"model_store": "/cli/store", "load_models": ["x=a.mar", "b.mar"]}, environ={})
    assert config.model_store == "/cli/store" and config.load_models == "x=a.mar,b.mar"
    assert config.job_queue_size == 5
    assert config.workflow_store == "/cli/store"  # defaults to the model store
    assert config.sources["model_store"] == "cli"
    assert config.sources["job_queue_size"] == f"file:{path}"
    assert config.sources["default_response_timeout"] == "default"
    assert config.config_file == str(path)


def test_cli_flags_only_switch_on(write_config) -> None:
    path = write_config("enable_model_api=true\ndisable_token_authorization=false\n")
    off = load_config(path, cli={"enable_model_api": False, "disable_token_authorization": False}, environ={})
    assert off.enable_model_api is True and off.disable_token_authorization is False
    on = load_config(
        write_config("enable_model_api=false\n"), cli={"enable_model_api": True, "disable_token_authorization": True},
        environ={},
    )
    assert on.enable_model_api is True and on.disable_token_authorization is True
    assert on.sources["enable_model_api"] == "cli"


def test_unknown_cli_key_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        load_config(None, cli={"job_queue_size": 3}, environ={})


ENV = {
    "TS_MODEL_STORE": "/env/store",
    "TS_JOB_QUEUE_SIZE": "42",
    "TS_TOKEN_EXPIRATION_TIME_MIN": "0.5",
    "TS_DISABLE_TOKEN_AUTHORIZATION": "TRUE",
    "TS_NUMBER_OF_GPU": "3",
    "TS_NUMBER_OF_NETTY_THREADS": "4",
    "TS_ALLOWED_URLS": "https://only\\.me/.*",
    "TS_TOKEN_EXPIRATION_MIN": "99",  # not the real name: ignored
    "TS_ENABLE_ENVVARS_CONFIG": "false",  # the switch cannot come from the environment
    "TS_MODELS": "{}",  # not overridable
}


def test_env_ignored_without_enable_envvars_config(write_config) -> None:
    config = load_config(write_config("model_store=/file\n"), environ=ENV)
    assert config.model_store == "/file" and config.job_queue_size == 100
    assert "number_of_netty_threads" not in config.extra
    assert load_config(None, environ={**ENV, "TS_ENABLE_ENVVARS_CONFIG": "true"}).job_queue_size == 100


def test_env_beats_cli_when_enabled(write_config) -> None:
    path = write_config("enable_envvars_config=true\nmodel_store=/file\nmodels={\"m\": {}}\n")
    config = load_config(path, cli={"model_store": "/cli"}, environ=ENV)
    assert config.model_store == "/env/store" and config.sources["model_store"] == "env"
    assert config.job_queue_size == 42 and config.number_of_gpu == 3
    assert config.token_expiration_min == 0.5 and config.disable_token_authorization is True
    assert config.extra["number_of_netty_threads"] == "4"
    assert config.enable_envvars_config is True and config.models == {"m": {}}
    assert config.allowed_urls == ["file://.*", "http(s)?://.*"]  # needs use_env_allowed_urls


def test_use_env_allowed_urls_gate(write_config) -> None:
    path = write_config("enable_envvars_config=true\nuse_env_allowed_urls=true\nallowed_urls=file://.*\n")
    config = load_config(path, environ=ENV)
    assert config.allowed_urls == ["https://only\\.me/.*"] and config.sources["allowed_urls"] == "env"
    env_only = load_config(write_config("use_env_allowed_urls=true\n"), environ=ENV)
    assert env_only.allowed_urls == ["file://.*", "http(s)?://.*"]


# -------------------------------------------------------------------------------------------- conversions
@pytest.mark.parametrize("raw, expected", [("true", True), ("TRUE", True), ("True ", True), ("yes", False),
                                           ("1", False), ("ture", False), ("", False)])
def test_bool_parsing(write_config, raw: str, expected: bool) -> None:
    assert load_config(write_config(f"debug={raw}\n"), environ={}).debug is expected


@pytest.mark.parametrize("raw", ["abc", "1.5", "1_000", "", "0x10"])
def test_int_parsing_is_strict(write_config, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"^Invalid value for job_queue_size: {raw}$"):
        load_config(write_config(f"job_queue_size={raw}\n"), environ={})


def test_int_parsing_accepts_signs(write_config) -> None:
    config = load_config(write_config("job_queue_size=+12\nnumber_of_gpu=-1\n"), environ={})
    assert (config.job_queue_size, config.number_of_gpu) == (12, -1)


def test_invalid_token_expiration_falls_back_to_60(write_config, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        config = load_config(write_config("token_expiration_min=soon\n"), environ={})
    assert config.token_expiration_min == 60.0 and "token_expiration_min" in caplog.text
    assert load_config(write_config("token_expiration_min=1.5\n"), environ={}).token_expiration_min == 1.5


@pytest.mark.parametrize("raw, mode", [("LOG", "log"), (" Prometheus ", "prometheus"), ("legacy", "legacy"),
                                       ("statsd", "log")])
def test_metrics_mode(write_config, raw: str, mode: str) -> None:
    assert load_config(write_config(f"metrics_mode={raw}\n"), environ={}).metrics_mode == mode


@pytest.mark.parametrize("text", ["models={not json\n", "models=[1]\n", "model_snapshot={\n",
                                  "batch_dispatch=greedy\n", "worker_start_method=forkserver\n",
                                  "log_level=chatty\n", "blacklist_env_vars=(\n"])
def test_invalid_values_fail(write_config, text: str) -> None:
    with pytest.raises(ConfigError):
        load_config(write_config(text), environ={})


def test_servekit_keys_and_allowed_urls_split(write_config) -> None:
    path = write_config("worker_torch_threads=2\nbatch_dispatch=TorchServe\nworker_start_method=spawn\n"
                        "log_level=debug\nallowed_urls=https://a/.*, file:///models/.*,\n")
    config = load_config(path, environ={})
    assert (config.worker_torch_threads, config.batch_dispatch) == (2, "torchserve")
    assert config.worker_start_method == "spawn"
    assert config.log_level == "DEBUG"
    assert config.allowed_urls == ["https://a/.*", "file:///models/.*"]


def test_unknown_keys_kept_in_extra(write_config) -> None:
    path = write_config("vmargs=-Xmx4g\nnumber_of_netty_threads=8\nplugins_path=/p\ntsConfigFile=/old\n")
    config = load_config(path, environ={})
    assert config.extra == {"vmargs": "-Xmx4g", "number_of_netty_threads": "8", "plugins_path": "/p"}
    assert config.sources["vmargs"] == f"file:{path}"


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--ts-config file not found"):
        load_config(tmp_path / "nope.properties", environ={})


# ---------------------------------------------------------------------------------------- describe / dump
def test_describe_and_to_properties_round_trip(write_config, tmp_path: Path) -> None:
    path = write_config("model_store=/m\nmodels={\"a\": {\"1.0\": {\"batchSize\": 2}}}\nvmargs=-Xmx1g\n")
    config = load_config(path, cli={"enable_model_api": True}, environ={})
    rows = {key: (value, source) for key, value, source in config.describe()}
    assert rows["model_store"] == ("/m", f"file:{path}")
    assert rows["enable_model_api"] == ("true", "cli")
    assert rows["vmargs"] == ("-Xmx1g", f"file:{path}")
    assert rows["tsConfigFile"][0] == str(path)

    props = config.to_properties()
    assert props["tsConfigFile"] == str(path) and "number_of_gpu" not in props
    snapshot = tmp_path / "snap.cfg"
    snapshot.write_text(format_properties(props), encoding="utf-8")
    restored = load_config(snapshot, environ={})
    for key in ("model_store", "models", "allowed_urls", "enable_model_api", "metrics_mode", "extra"):
        assert getattr(restored, key) == getattr(config, key)
