"""Safe unpacking of model archives for the server (archive.md §5.2, §5.3, §5.7).

Archives come from model stores and URLs, so they are untrusted: every entry must land inside
its target directory, only regular files and directories are created, and the total size is
bounded. A refused or broken archive leaves nothing behind.

Imported by the frontend: no torch here.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import struct
import tarfile
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import IO

from servekit.errors import InvalidModelError

DEFAULT_MAX_UNPACKED_BYTES = 64 * 1024**3
_CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
# What a corrupt, truncated or unsupported archive raises from zipfile, tarfile, gzip and zlib.
_BROKEN_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    struct.error,
    OSError,
    ValueError,
    NotImplementedError,
)


def unpack_archive(archive: Path, models_root: Path, *, max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES) -> Path:
    """Unpack `archive` into a new `models_root/<uuid hex>/` and return that directory.

    A name ending in `.mar` is read as ZIP, anything else as gzip-tar whose first path
    component is dropped. Raises `InvalidModelError` for unsafe, corrupt or oversized archives.
    """
    archive = Path(archive)
    root = ensure_models_root(models_root)
    name = uuid.uuid4().hex
    # Unpacked under a ".download" name and renamed, so a half-unpacked model is never seen.
    staging = root / f"{name}.download"
    staging.mkdir()
    budget = _Budget(archive.name, max_unpacked_bytes)
    try:
        if archive.name.endswith(".mar"):
            _extract_zip(archive, staging, budget)
        else:
            _extract_tar(archive, staging, budget)
        target = root / name
        os.rename(staging, target)
        return target
    except _BROKEN_ARCHIVE_ERRORS as exc:
        raise InvalidModelError(f"Failed to unpack model archive {archive.name}: {_reason(exc)}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def link_model_directory(src_dir: Path, models_root: Path) -> Path:
    """Serve a directory in place: `models_root/<hex>/<name>` -> the source; return the link.

    When the source holds exactly one entry and it is a directory (a tarball unpacked with its
    top-level folder), the link points at that inner directory instead.
    """
    source = Path(os.path.abspath(src_dir))
    if not source.is_dir():
        raise InvalidModelError(f"Model directory not found: {src_dir}")
    children = list(source.iterdir())
    target = children[0] if len(children) == 1 and children[0].is_dir() else source
    holder = ensure_models_root(models_root) / uuid.uuid4().hex
    holder.mkdir()
    link = holder / (source.name or "model")
    link.symlink_to(target, target_is_directory=True)
    return link


def remove_model_directory(model_dir: Path, models_root: Path) -> None:
    """Delete the `models_root/<hex>/` directory holding `model_dir` (unpacked or linked).

    For a linked directory only the holder and the link go; the link is never followed, so the
    user's source directory is untouched. Anything not inside `models_root` is refused.
    """
    root = Path(os.path.abspath(models_root))
    path = Path(os.path.abspath(model_dir))
    if path == root or not path.is_relative_to(root):
        raise ValueError(f"refusing to delete '{model_dir}': it is not inside the models directory '{root}'")
    holder = root / path.relative_to(root).parts[0]
    if holder.is_symlink():
        raise ValueError(f"refusing to delete '{holder}': it is a symlink, not a model directory")
    if holder.exists():
        shutil.rmtree(holder)  # removes a link inside without following it


def ensure_models_root(models_root: Path) -> Path:
    """Create the models directory private to this user (0700) if it does not exist yet."""
    root = Path(models_root)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


class _Budget:
    """Caps the bytes written, so a small archive cannot fill the disk (a "zip bomb")."""

    def __init__(self, archive_name: str, limit: int):
        self._archive_name, self._limit, self._used = archive_name, limit, 0

    def charge(self, nbytes: int) -> None:
        self._used += nbytes
        if self._used > self._limit:
            raise InvalidModelError(
                f"Model archive {self._archive_name} is too large: it unpacks to more than "
                f"{self._limit} bytes (max_unpacked_bytes)"
            )


def _extract_zip(archive: Path, target: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        # Check every entry before writing anything: the central directory lists them all.
        planned = [(info, _check_zip_entry(info)) for info in infos]
        budget.charge(sum(info.file_size for info in infos))
        for info, parts in planned:
            if not parts:
                continue  # the root itself
            dest = target.joinpath(*parts)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src:  # zipfile checks the CRC at the end of the entry
                _write_file(src, dest)


def _check_zip_entry(info: zipfile.ZipInfo) -> list[str]:
    parts = _safe_parts(info.filename)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise InvalidModelError(f"Archive entry is a link, refused: {info.filename}")
    if info.flag_bits & 0x1:
        raise InvalidModelError(f"Archive entry is encrypted, refused: {info.filename}")
    if not parts and not info.is_dir():
        raise InvalidModelError(f"Detected Zip Slip vulnerability: {info.filename}")
    return parts


def _extract_tar(archive: Path, target: Path, budget: _Budget) -> None:
    # Stream mode: one pass over the gzip data, no seeking back for each member.
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            parts = _check_tar_member(member)
            if not parts:
                continue  # the "<model-name>/" directory itself
            dest = target.joinpath(*parts)
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            budget.charge(member.size)
            dest.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            if src is None:  # cannot happen for a regular file; keeps the types honest
                raise tarfile.ReadError(f"no data for {member.name}")
            with src:
                _write_file(src, dest)


def _check_tar_member(member: tarfile.TarInfo) -> list[str]:
    _safe_parts(member.name)  # the raw name too: refuse "/abs" and ".." even if stripping hides it
    if member.issym() or member.islnk():
        raise InvalidModelError(f"Archive entry is a link, refused: {member.name}")
    if not (member.isreg() or member.isdir()):
        raise InvalidModelError(f"Archive entry is not a regular file or directory, refused: {member.name}")
    # tarfile drops a directory's trailing "/", which TorchServe's stripping relies on, so
    # "densenet161/" (the top-level folder) maps to the root rather than to "densenet161".
    name = f"{member.name}/" if member.isdir() else member.name
    _, sep, rest = name.partition("/")
    parts = _safe_parts(rest if sep else name)
    if not parts and not member.isdir():
        raise InvalidModelError(f"Detected Zip Slip vulnerability: {member.name}")
    return parts


def _safe_parts(name: str) -> list[str]:
    """Path components of an entry name; raise if it could land outside the target."""
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise InvalidModelError(f"Detected Zip Slip vulnerability: {name}")
    # Backslashes stay part of file names (as in TorchServe), but "..\\" is refused anyway in
    # case the files are later read on Windows.
    if ".." in re.split(r"[/\\]", name):
        raise InvalidModelError(f"Detected Zip Slip vulnerability: {name}")
    return [part for part in name.split("/") if part not in ("", ".")]


def _write_file(src: IO[bytes], dest: Path) -> None:
    with open(dest, "wb") as dst:
        while chunk := src.read(_CHUNK):
            dst.write(chunk)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
