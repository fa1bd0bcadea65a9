"""Pack planned entries into a zip, a gzip tar or a directory, manifest last (archive.md §3.3).

Entries are streamed straight from their source files. Zip and tar outputs are written to a
temporary file next to the target and renamed into place at the end, so a failed or interrupted
run never leaves a half-written archive, and `--force` keeps the old one until the new one is
complete.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import time
import uuid
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from servekit.archiver.plan import Entry
from servekit.archiver.progress import Progress, ProgressTask
from servekit.manifest import MANIFEST_PATH

_CHUNK = 1024 * 1024
# TorchServe's tarfile default is gzip level 9; 6 is several times faster on checkpoints and
# the unpacked content is the same.
_GZIP_LEVEL = 6


def write_output(
    entries: Sequence[Entry], manifest: str, output: Path, archive_format: str, model_name: str, progress: Progress
) -> None:
    """Write `output` in `archive_format` (one of config.ARCHIVE_FORMATS)."""
    if archive_format == "no-archive":
        write_directory(entries, manifest, output, progress)
    elif archive_format == "tgz":
        _atomically(output, lambda tmp: write_tgz(entries, manifest, tmp, model_name, progress))
    else:
        compression = zipfile.ZIP_STORED if archive_format == "zip-store" else zipfile.ZIP_DEFLATED
        _atomically(output, lambda tmp: write_zip(entries, manifest, tmp, compression, progress))


def write_zip(entries: Sequence[Entry], manifest: str, dest: Path, compression: int, progress: Progress) -> None:
    with zipfile.ZipFile(dest, "w", compression) as archive:
        for entry in entries:
            # strict_timestamps=False clamps pre-1980 mtimes (e.g. from Nix stores) instead of failing.
            info = zipfile.ZipInfo.from_file(entry.source, entry.name, strict_timestamps=False)
            info.compress_type = compression
            task = progress.track("Packing", entry.name, info.file_size)
            with open(entry.source, "rb") as src, archive.open(info, "w") as dst:
                _copy(src, dst, task)
        archive.writestr(MANIFEST_PATH, manifest)


def write_tgz(entries: Sequence[Entry], manifest: str, dest: Path, model_name: str, progress: Progress) -> None:
    # Every member sits under "<model-name>/"; the server strips that first component.
    with tarfile.open(dest, "w:gz", compresslevel=_GZIP_LEVEL) as archive:
        for entry in entries:
            with open(entry.source, "rb") as src:
                # From the open file (fstat), so a symlinked source is packed as a regular file.
                info = archive.gettarinfo(arcname=f"{model_name}/{entry.name}", fileobj=src)
                task = progress.track("Packing", entry.name, info.size)
                archive.addfile(info, _ProgressReader(src, task))
                task.finish()
        data = manifest.encode("utf-8")
        info = tarfile.TarInfo(f"{model_name}/{MANIFEST_PATH}")
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        archive.addfile(info, io.BytesIO(data))


def write_directory(entries: Sequence[Entry], manifest: str, dest: Path, progress: Progress) -> None:
    # With --force, files are copied over an existing tree and stale files survive (TorchServe).
    for entry in entries:
        target = dest / entry.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and os.path.samefile(entry.source, target):
            continue  # re-exporting from the output itself: copying would truncate the source
        task = progress.track("Copying", entry.name, entry.source.stat().st_size)
        with open(entry.source, "rb") as src, open(target, "wb") as dst:
            _copy(src, dst, task)
        shutil.copymode(entry.source, target)
    manifest_file = dest / MANIFEST_PATH
    manifest_file.parent.mkdir(parents=True, exist_ok=True)
    manifest_file.write_bytes(manifest.encode("utf-8"))


def _atomically(output: Path, write: Callable[[Path], None]) -> None:
    tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        write(tmp)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


def _copy(src: IO[bytes], dst: IO[bytes], task: ProgressTask) -> None:
    while chunk := src.read(_CHUNK):
        dst.write(chunk)
        task.advance(len(chunk))
    task.finish()


class _ProgressReader(io.RawIOBase):
    """A read-only view of `src` that reports how much `tarfile` has consumed."""

    def __init__(self, src: IO[bytes], task: ProgressTask):
        super().__init__()
        self._src, self._task = src, task

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._src.read(size)
        self._task.advance(len(data))
        return data
