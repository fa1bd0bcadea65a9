"""Java `.properties` text (TorchServe's config.properties and snapshots) and `$$VAR$$` substitution."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from servekit.errors import ConfigError

# ------------------------------------------------------------------------------------------- .properties
_BLANKS = " \t\f"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> Iterable[str]:
    """Join continuation lines (odd number of trailing backslashes) and drop comments and blank lines."""
    lines = iter(re.split(r"\r\n|\r|\n", text))  # not str.splitlines(): Java ends lines only at CR/LF
    for line in lines:
        line = line.lstrip(_BLANKS)
        if not line or line[0] in "#!":
            continue  # a comment line never continues, even if it ends with a backslash
        while _continues(line):
            line = line[:-1] + next(lines, "").lstrip(_BLANKS)
        yield line


def _continues(line: str) -> bool:
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _split_key(line: str) -> tuple[str, str]:
    """Split at the first unescaped `=`, `:` or blank; blanks around one `=`/`:` belong to the separator."""
    i = 0
    while i < len(line) and line[i] not in "=:" + _BLANKS:
        i += 2 if line[i] == "\\" else 1
    key, rest = line[:i], line[i:].lstrip(_BLANKS)
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(_BLANKS)
    return key, rest


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        char, i = text[i], i + 1
        if char != "\\" or i >= len(text):
            out.append(char)
            continue
        char, i = text[i], i + 1
        if char == "u":
            digits, i = text[i : i + 4], i + 4
            if not re.fullmatch(r"[0-9A-Fa-f]{4}", digits):
                raise ConfigError("Malformed \\uxxxx encoding in config file")
            char = chr(int(digits, 16))
        out.append(_ESCAPES.get(char, char))
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java `.properties` text (the subset TorchServe files and snapshots use is all of it)."""
    props: dict[str, str] = {}
    for line in _logical_lines(text):
        key, value = _split_key(line)
        props[_unescape(key)] = _unescape(value)  # duplicate keys: last wins
    return props


def _escape(text: str, is_key: bool) -> str:
    out = []
    for i, char in enumerate(text):
        if char == " " and (is_key or i == 0):
            out.append("\\ ")
        elif char in "\\=:#!":
            out.append("\\" + char)
        elif char in "\t\n\r\f":
            out.append("\\" + "tnrf"["\t\n\r\f".index(char)])
        elif not " " <= char <= "~":
            out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else char)
        else:
            out.append(char)
    return "".join(out)


def format_properties(props: Mapping[str, str], comments: Iterable[str] = ()) -> str:
    """Write properties the way Java's `Properties.store` does, so `parse_properties` reads them back."""
    lines = [f"#{comment}" for comment in comments]
    lines += [f"{_escape(key, True)}={_escape(value, False)}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- substitution
# A name has at least two characters and no `$` (TorchServe's rule), so `$$$$` and `$$a$$` stay literal.
_ENV_REF = re.compile(r"\$\$([^$]{2,}?)\$\$")


def substitute_env(value: str, environ: Mapping[str, str]) -> str:
    """Replace every `$$NAME$$` in a properties value with the environment variable NAME."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(f"Invalid Environment Variable {name}")
        return environ[name]

    return _ENV_REF.sub(lookup, value)
