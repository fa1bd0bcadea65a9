"""Progress lines for large files, so packing a multi-GiB checkpoint does not look hung."""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

LARGE_FILE_BYTES = 64 * 1024 * 1024
_MIB = 1024 * 1024


class ProgressTask(Protocol):
    def advance(self, nbytes: int) -> None: ...

    def finish(self) -> None: ...


class Progress(Protocol):
    def track(self, verb: str, label: str, total: int) -> ProgressTask: ...


class _SilentTask:
    def advance(self, nbytes: int) -> None:
        pass

    def finish(self) -> None:
        pass


class SilentProgress:
    """The library default: report nothing."""

    def track(self, verb: str, label: str, total: int) -> ProgressTask:
        return _SilentTask()


class _StreamTask:
    def __init__(self, stream: TextIO, verb: str, label: str, total: int, live: bool):
        self._stream, self._prefix, self._total, self._live = stream, f"{verb} {label}", total, live
        self._done = 0
        self._shown = -1
        if live:
            self._show()
        else:
            self._write(f"{self._prefix}: started ({self._total // _MIB} MiB)\n")

    def advance(self, nbytes: int) -> None:
        self._done += nbytes
        if self._live:
            self._show()

    def finish(self) -> None:
        if self._live:
            self._done = self._total
            self._show()
            self._write("\n")
        else:
            self._write(f"{self._prefix}: done ({self._total // _MIB} MiB)\n")

    def _show(self) -> None:
        percent = 100 * self._done // self._total if self._total else 100
        if percent == self._shown:  # redraw once per percent, not once per chunk
            return
        self._shown = percent
        self._write(f"\r{self._prefix}: {percent}% ({self._done // _MIB}/{self._total // _MIB} MiB)")

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


class StreamProgress:
    """Report files larger than `threshold` on `stream` (stderr by default).

    On a terminal the line is redrawn in place with `\\r`; otherwise (logs, CI) only a start and
    a done line are written, since carriage returns make a mess of captured output.
    """

    def __init__(self, stream: TextIO | None = None, threshold: int = LARGE_FILE_BYTES):
        self._stream = stream if stream is not None else sys.stderr
        self._threshold = threshold

    def track(self, verb: str, label: str, total: int) -> ProgressTask:
        if total <= self._threshold:
            return _SilentTask()
        live = bool(getattr(self._stream, "isatty", lambda: False)())
        return _StreamTask(self._stream, verb, label, total, live)
