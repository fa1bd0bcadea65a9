"""Which source file lands at which archive path (archive.md §3.1-§3.3).

TorchServe's archiver copies every artifact into a staging directory and then packs it. We keep
that staging directory as a mapping instead (archive name -> source path) and let the writers
stream straight from the sources: no second copy of a multi-GiB checkpoint, same result. The
mapping reproduces the staging rules: basenames only, copy order, last copied wins, extra
directories merged into the root, skipped directories left out, manifest added by the writer.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from servekit.archiver.config import ModelArchiverConfig, PathLike
from servekit.archiver.errors import ModelArchiverError
from servekit.manifest import MANIFEST_PATH

logger = logging.getLogger("servekit.archiver")

# Names TorchServe's archiver treats as built-in: nothing is copied for them.
BUILTIN_HANDLERS = frozenset(
    {
        "base_handler",
        "text_classifier",
        "image_classifier",
        "object_detector",
        "image_segmenter",
        "dali_image_classifier",
        "vllm_handler",
        "trt_llm_handler",
    }
)
# Optional in handlers.md §1.4; built-in only if servekit actually ships the module.
OPTIONAL_BUILTIN_HANDLERS = frozenset({"densenet_handler"})
LSP_BUILTIN_HANDLERS = frozenset({"BaseHandler", "TorchScriptHandler"})
_SERVEKIT_HANDLERS_DIR = Path(__file__).resolve().parents[1] / "handlers"
_SKIPPED_DIRS = ("__MACOSX", "__pycache__")


@dataclass(frozen=True)
class Entry:
    name: str  # '/'-separated path relative to the archive root
    source: Path


class ArchivePlan:
    """The staging directory, as a name -> source mapping with `shutil` copy semantics."""

    def __init__(self) -> None:
        self._files: dict[str, Path] = {}
        self._dirs: set[str] = set()

    def add_file(self, name: str, source: Path) -> None:
        """Like `shutil.copy` into the root: an existing file of that name is replaced."""
        if name in self._dirs:
            raise ModelArchiverError(f"cannot add file '{source}': the archive already has a directory '{name}'")
        self._files[name] = source

    def add_tree(self, name: str, source: Path) -> None:
        """Like `shutil.copytree` into the root: the destination must not exist yet."""
        if name in self._dirs or name in self._files:
            raise ModelArchiverError(f"cannot add directory '{source}': the archive already has an entry '{name}'")
        self._dirs.add(name)
        for relative, path in _walk_files(source, frozenset()):
            self._files[f"{name}/{relative}"] = path

    def entries(self) -> list[Entry]:
        """What gets packed, in copy order (the writer appends the manifest last)."""
        if MANIFEST_PATH in self._files:
            logger.warning("Ignoring %s from the extra files: the archiver writes its own.", self._files[MANIFEST_PATH])
        return [Entry(name, src) for name, src in self._files.items() if name != MANIFEST_PATH]


def build_plan(config: ModelArchiverConfig) -> ArchivePlan:
    """Check every input and map it into the archive, in TorchServe's copy order."""
    plan = ArchivePlan()
    _add_input(plan, "model file", config.model_file)
    _add_input(plan, "serialized file", config.serialized_file)
    handler_file = handler_source(config.handler, config.runtime)
    if handler_file is not None:
        _add_handler(plan, config.handler, handler_file)
    add_extra_files(plan, config.extra_files)
    _add_input(plan, "requirements file", config.requirements_file)
    _add_input(plan, "config file", config.config_file)
    return plan


def handler_source(handler: str, runtime: str = "python") -> str | None:
    """The file to copy for a `--handler` value, or None for a built-in handler (§3.2)."""
    if runtime == "LSP":
        if handler in LSP_BUILTIN_HANDLERS:
            return None
        suffix = ".dylib" if sys.platform == "darwin" else ".so"
    else:
        if handler in BUILTIN_HANDLERS or _is_servekit_handler(handler):
            return None
        suffix = ".py"
    if suffix in handler:  # copied literally, so "h.py:fn" names a file "h.py:fn", as in TorchServe
        return handler
    head, sep, tail = handler.rpartition("/")
    return f"{head}{sep}{tail.split(':', 1)[0]}{suffix}"


def _is_servekit_handler(handler: str) -> bool:
    # Handlers servekit ships beyond TorchServe's list count as built-in once they exist, unless
    # the user has a local file of that name, which then wins as it would in the worker.
    if handler not in OPTIONAL_BUILTIN_HANDLERS or os.path.exists(f"{handler}.py"):
        return False
    return (_SERVEKIT_HANDLERS_DIR / f"{handler}.py").is_file()


def add_extra_files(plan: ArchivePlan, extra_files: str | Sequence[str] | None) -> None:
    """`--extra-files`: comma-separated files, directories and glob patterns (§3.2.1)."""
    if extra_files is None:
        return
    items = extra_files.split(",") if isinstance(extra_files, str) else list(extra_files)
    for item in items:
        for match in _expand(item):
            _add_extra(plan, Path(match))


def _expand(item: str) -> list[str]:
    is_pattern = "*" in item or "?" in item or ("[" in item and "]" in item)
    # The existence check uses the item unstripped ("a, b" fails on " b"), as TorchServe does.
    if not is_pattern and not os.path.exists(item):
        raise ModelArchiverError(f"extra file '{item}' does not exist")
    matches = sorted(glob.glob(item.strip()))
    if not matches:
        logger.warning("Given wildcard pattern did not match any file: %s", item)
    return matches


def _add_extra(plan: ArchivePlan, path: Path) -> None:
    if path.is_file():
        plan.add_file(path.name, path)
    elif path.is_dir():
        _merge_directory(plan, path)
    else:
        raise ModelArchiverError(f"Invalid extra file given {path}")


def _merge_directory(plan: ArchivePlan, directory: Path) -> None:
    # The directory's own name never appears: its children land at the archive root.
    for child in _sorted_children(directory):
        if child.is_file():
            plan.add_file(child.name, child)
        elif child.is_dir():
            if not is_skipped_dir(child.name):
                plan.add_tree(child.name, child)
        else:
            raise ModelArchiverError(f"Invalid extra file given {child}")


def _walk_files(top: Path, ancestors: frozenset[str]) -> Iterator[tuple[str, Path]]:
    """Files under `top` as ('a/b.txt', path), following symlinks like `shutil.copytree`."""
    real = os.path.realpath(top)
    if real in ancestors:
        raise ModelArchiverError(f"symlink loop in extra files at '{top}'")
    for child in _sorted_children(top):
        if child.is_dir():
            # Skipped directories are dropped at packing time; not walking them saves time.
            if not is_skipped_dir(child.name):
                for relative, path in _walk_files(child, ancestors | {real}):
                    yield f"{child.name}/{relative}", path
        elif child.is_file():
            yield child.name, child
        else:
            raise ModelArchiverError(f"Invalid extra file given {child}")


def is_skipped_dir(name: str) -> bool:
    """Directories never packed: macOS resource forks, bytecode caches, hidden directories."""
    return name in _SKIPPED_DIRS or name.startswith(".")


def _sorted_children(directory: Path) -> list[Path]:
    # Sorted so that "last copied wins" between duplicate names is deterministic.
    return sorted(directory.iterdir(), key=lambda p: p.name)


def _add_input(plan: ArchivePlan, what: str, path: PathLike | None) -> None:
    if path is None or str(path) == "":
        return
    _require_file(what, str(path))
    source = Path(path)
    plan.add_file(source.name, source)


def _add_handler(plan: ArchivePlan, handler: str, file: str) -> None:
    source = Path(file)
    if not source.exists() and "/" not in handler and ".py" not in handler:
        builtins = ", ".join(sorted(BUILTIN_HANDLERS))
        raise ModelArchiverError(
            f"handler file '{file}' does not exist: --handler takes a built-in handler name "
            f"({builtins}) or the path of a handler .py file"
        )
    _require_file("handler file", file)
    plan.add_file(source.name, source)


def _require_file(what: str, path: str) -> None:
    # Quote the path as the user typed it, so "./x.pth" is reported as "./x.pth".
    if not os.path.exists(path):
        raise ModelArchiverError(f"{what} '{path}' does not exist")
    if not os.path.isfile(path):
        raise ModelArchiverError(f"{what} '{path}' is not a regular file")
