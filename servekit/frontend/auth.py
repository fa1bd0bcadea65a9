"""Token authorization (TorchServe-compatible `key_file.json`), independent of the HTTP layer.

Three keys are generated at startup: `management` and `inference` expire `token_expiration_min` minutes after
they are (re)generated; `API` never expires and only authorizes regenerating the other two. The HTTP handlers
call `check()` / `regenerate()`; this module never imports aiohttp so it can be tested with a fake clock.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from servekit.errors import InvalidKeyError

__all__ = ["AUTH_FAILED", "KEY_FILE_NAME", "REGENERATE_FAILED", "TokenStore", "generate_key"]

AUTH_FAILED = "Token Authorization failed. Token either incorrect, expired, or not provided correctly"
# Note "Authentication": the /token endpoint's message differs from the normal check's (TorchServe wording).
REGENERATE_FAILED = "Token Authentication failed. Token either incorrect, expired, or not provided correctly"
KEY_FILE_NAME = "key_file.json"
EXPIRING_KINDS = ("management", "inference")
API = "API"

# Full match, case-sensitive "Bearer", exactly one token. re.ASCII makes \s mean what it means in Java.
_BEARER = re.compile(r"Bearer\s+(\S+)", re.ASCII)


def generate_key() -> str:
    """6 random bytes, URL-safe base64: 8 characters from [A-Za-z0-9_-]."""
    return base64.urlsafe_b64encode(secrets.token_bytes(6)).decode("ascii")


def bearer_token(authorization_header: str | None) -> str | None:
    """The token of a well-formed `Bearer <token>` header; None for anything else."""
    match = _BEARER.fullmatch(authorization_header or "")
    return match.group(1) if match else None


def format_instant(epoch_seconds: float) -> str:
    """ISO-8601 UTC with 0, 3 or 6 fractional digits and a 'Z', like Java's `Instant.toString()`."""
    moment = datetime.fromtimestamp(epoch_seconds, timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    micros = moment.microsecond
    if micros % 1000 == 0 and micros:
        text += f".{micros // 1000:03d}"
    elif micros:
        text += f".{micros:06d}"
    return text + "Z"


@dataclass
class _Key:
    value: str
    expires_at: float | None  # epoch seconds; None never expires

    def to_json(self) -> dict[str, str]:
        if self.expires_at is None:
            return {"key": self.value}
        return {"key": self.value, "expiration time": format_instant(self.expires_at)}


class TokenStore:
    """The live keys plus the key file that publishes them to the operator."""

    def __init__(
        self,
        key_file: Path,
        expiration_min: float,
        keys: dict[str, _Key],
        now: Callable[[], float] = time.time,
    ) -> None:
        self.key_file = Path(key_file)
        self.expiration_min = expiration_min
        self._keys = keys
        self._now = now

    @classmethod
    def create(
        cls, key_file: Path, expiration_min: float, now: Callable[[], float] = time.time
    ) -> TokenStore:
        """Generate all three keys and write `key_file` (normally `<cwd>/key_file.json`) with mode 0600."""
        store = cls(key_file, expiration_min, {}, now)
        store._keys = {kind: store._new_key(kind) for kind in (*EXPIRING_KINDS, API)}
        store._write(store._keys)
        return store

    def key(self, kind: str) -> str:
        """The current key for "management", "inference" or "API"."""
        return self._keys[kind].value

    def expires_at(self, kind: str) -> float | None:
        return self._keys[kind].expires_at

    def check(self, kind: str, authorization_header: str | None) -> bool:
        """True if the header carries the current, unexpired key of `kind` ("management" or "inference")."""
        if kind not in EXPIRING_KINDS:
            raise ValueError(f"unknown token kind {kind!r}")
        return self._matches(kind, bearer_token(authorization_header))

    def regenerate(self, kind: str, authorization_header: str | None) -> None:
        """Replace the `kind` key (the old one stops working at once); the header must carry the API key.

        Raises InvalidKeyError(REGENERATE_FAILED) on a bad kind, a bad API key or a failed file write.
        """
        if kind not in EXPIRING_KINDS or not self._matches(API, bearer_token(authorization_header)):
            raise InvalidKeyError(REGENERATE_FAILED)
        keys = {**self._keys, kind: self._new_key(kind)}
        try:
            self._write(keys)
        except OSError:
            raise InvalidKeyError(REGENERATE_FAILED) from None
        self._keys = keys  # only after the file is published, so the operator can always read the live key

    def _matches(self, kind: str, token: str | None) -> bool:
        key = self._keys[kind]
        if token is None or (key.expires_at is not None and key.expires_at < self._now()):
            return False
        # Bytes, because compare_digest refuses non-ASCII str and the token is attacker-controlled.
        return hmac.compare_digest(token.encode("utf-8"), key.value.encode("utf-8"))

    def _new_key(self, kind: str) -> _Key:
        expires_at = None if kind == API else self._now() + self.expiration_min * 60
        return _Key(generate_key(), expires_at)

    def _write(self, keys: dict[str, _Key]) -> None:
        """Write the file atomically; it is private (0600) from its first byte, never chmod-ed afterwards."""
        text = json.dumps({kind: key.to_json() for kind, key in keys.items()}, indent=2)
        tmp = self.key_file.with_name(f".{self.key_file.name}.{secrets.token_hex(4)}.tmp")
        # O_EXCL also refuses to follow a planted symlink at the temporary name.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
            os.replace(tmp, self.key_file)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
