"""Small launcher helpers that keep `servekit.cli` about commands, not parsing."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path
from urllib.parse import urlparse


def split_models_argv(argv: list[str]) -> list[str]:
    """`--models a.mar b=c.mar` takes several values (like TorchServe); click wants one: join them."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--models":
            values = []
            i += 1
            while i < len(argv) and not argv[i].startswith("-"):
                values.append(argv[i])
                i += 1
            out += ["--models", ",".join(values)]
            continue
        out.append(argv[i])
        i += 1
    return out


def read_config_hints(config_file: str | None) -> dict[str, str]:
    """The few keys the launcher needs before the server parses the file properly."""
    if not config_file or not Path(config_file).is_file():
        return {}
    from servekit.config import parse_properties

    return parse_properties(Path(config_file).read_text())


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=1.0)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(1.0)
        self.sock.connect(self._path)


def ping_once(address: str) -> bool:
    """True when anything answers HTTP at the inference address's /ping."""
    if address.startswith("unix:"):
        conn: http.client.HTTPConnection = _UnixConnection(address[len("unix:"):])
    else:
        url = urlparse(address)
        host = url.hostname or "127.0.0.1"
        if host == "0.0.0.0":
            host = "127.0.0.1"
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = cls(host, url.port or (443 if url.scheme == "https" else 80), timeout=1.0)
    try:
        conn.request("GET", "/ping")
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
