from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from servekit.errors import InvalidKeyError
from servekit.frontend.auth import (
    AUTH_FAILED,
    REGENERATE_FAILED,
    TokenStore,
    bearer_token,
    format_instant,
    generate_key,
)

T0 = 1_708_117_944.801167  # 2024-02-16T21:12:24.801167Z


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> TokenStore:
    return TokenStore.create(tmp_path / "key_file.json", expiration_min=60, now=clock)


def bearer(key: str) -> str:
    return f"Bearer {key}"


def test_messages() -> None:
    assert AUTH_FAILED == "Token Authorization failed. Token either incorrect, expired, or not provided correctly"
    assert REGENERATE_FAILED.startswith("Token Authentication failed.")


def test_keys_are_8_url_safe_chars(store: TokenStore) -> None:
    keys = [store.key(kind) for kind in ("management", "inference", "API")]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{8}", key) for key in keys)
    assert len(set(keys)) == 3
    assert len({generate_key() for _ in range(200)}) == 200


def test_key_file_format_and_permissions(store: TokenStore, tmp_path: Path) -> None:
    path = tmp_path / "key_file.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    data = json.loads(text)
    assert list(data) == ["management", "inference", "API"]
    assert data["management"] == {"key": store.key("management"), "expiration time": "2024-02-16T22:12:24.801167Z"}
    assert data["inference"]["expiration time"] == "2024-02-16T22:12:24.801167Z"
    assert data["API"] == {"key": store.key("API")}
    assert text.startswith('{\n  "management": {\n    "key": ')  # 2-space indent
    assert [p.name for p in tmp_path.iterdir()] == ["key_file.json"]  # no temporary file left behind


def test_key_file_private_even_if_it_existed_with_wide_permissions(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "key_file.json"
    path.write_text("{}")
    path.chmod(0o644)
    TokenStore.create(path, 60, now=clock)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("seconds, text", [(0.0, "1970-01-01T00:00:00Z"), (1.5, "1970-01-01T00:00:01.500Z"),
                                           (2.000123, "1970-01-01T00:00:02.000123Z")])
def test_format_instant(seconds: float, text: str) -> None:
    assert format_instant(seconds) == text


def test_check_accepts_the_right_key_only(store: TokenStore) -> None:
    management, inference = store.key("management"), store.key("inference")
    assert store.check("management", bearer(management))
    assert store.check("inference", bearer(inference))
    assert not store.check("management", bearer(inference))
    assert not store.check("inference", bearer(store.key("API")))
    assert not store.check("inference", None)
    assert not store.check("inference", bearer(inference + "x"))
    assert not store.check("inference", "Bearer é" + inference)  # non-ASCII must not blow up


@pytest.mark.parametrize("template", ["bearer {}", "Bearer{}", "Bearer {} extra", "Bearer {}\n", " Bearer {}",
                                      "Basic {}", "{}", "Bearer  {} ", "Bearer\u00a0{}"])
def test_bearer_regex_is_strict(store: TokenStore, template: str) -> None:
    assert not store.check("inference", template.format(store.key("inference")))


@pytest.mark.parametrize("template", ["Bearer {}", "Bearer   {}", "Bearer\t{}"])
def test_bearer_whitespace_variants(store: TokenStore, template: str) -> None:
    assert store.check("inference", template.format(store.key("inference")))
    assert bearer_token(template.format("tok")) == "tok"


def test_unknown_kind_is_a_programming_error(store: TokenStore) -> None:
    with pytest.raises(ValueError):
        store.check("API", bearer(store.key("API")))


def test_expiry(tmp_path: Path, clock: FakeClock) -> None:
    store = TokenStore.create(tmp_path / "key_file.json", expiration_min=0.5, now=clock)
    header = bearer(store.key("inference"))
    clock.now = T0 + 30  # exactly at the expiry instant: still valid
    assert store.check("inference", header)
    clock.now = T0 + 30.001
    assert not store.check("inference", header)
    assert not store.check("management", bearer(store.key("management")))


def test_regenerate_with_api_key(store: TokenStore, clock: FakeClock, tmp_path: Path) -> None:
    old = store.key("management")
    inference = store.key("inference")
    clock.now = T0 + 3000
    store.regenerate("management", bearer(store.key("API")))
    new = store.key("management")
    assert new != old
    assert not store.check("management", bearer(old))
    assert store.check("management", bearer(new))
    assert store.key("inference") == inference
    clock.now = T0 + 3700  # the original expiry has passed, the new key's has not
    assert store.check("management", bearer(new))
    data = json.loads((tmp_path / "key_file.json").read_text())
    assert data["management"] == {"key": new, "expiration time": format_instant(T0 + 3000 + 3600)}
    assert data["inference"]["key"] == inference
    assert stat.S_IMODE((tmp_path / "key_file.json").stat().st_mode) == 0o600


@pytest.mark.parametrize("kind, header", [("management", None), ("management", "Bearer nope"),
                                          ("API", "API_KEY"), ("other", "API_KEY"), ("management", "MGMT_KEY")])
def test_regenerate_failures(store: TokenStore, tmp_path: Path, kind: str, header: str | None) -> None:
    if header == "API_KEY":
        header = bearer(store.key("API"))
    elif header == "MGMT_KEY":
        header = bearer(store.key("management"))
    before = (tmp_path / "key_file.json").read_text()
    old = store.key("management")
    with pytest.raises(InvalidKeyError) as raised:
        store.regenerate(kind, header)
    assert raised.value.message == REGENERATE_FAILED and raised.value.status == 400
    assert store.key("management") == old
    assert (tmp_path / "key_file.json").read_text() == before


def test_regenerate_io_error_keeps_old_key(store: TokenStore, tmp_path: Path) -> None:
    old = store.key("inference")
    store.key_file = tmp_path / "missing-dir" / "key_file.json"
    with pytest.raises(InvalidKeyError):
        store.regenerate("inference", bearer(store.key("API")))
    assert store.check("inference", bearer(old))
