"""What to archive: the programmatic twin of the CLI flags (archive.md §4)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ARCHIVE_FORMATS = ("tgz", "no-archive", "zip-store", "default")
# Output name suffix per format, exactly TorchServe's mapping.
OUTPUT_SUFFIXES = {"tgz": ".tar.gz", "no-archive": "", "zip-store": ".mar", "default": ".mar"}

PathLike = str | os.PathLike[str]


@dataclass
class ModelArchiverConfig:
    """One archive to build. Paths are taken relative to the current directory, like the CLI.

    `extra_files` is the CLI's comma-separated string; a list of items is accepted as well.
    """

    model_name: str
    handler: str
    version: str
    serialized_file: PathLike | None = None
    model_file: PathLike | None = None
    extra_files: str | Sequence[str] | None = None
    runtime: str = "python"
    export_path: PathLike = field(default_factory=os.getcwd)
    archive_format: str = "default"
    force: bool = False
    requirements_file: PathLike | None = None
    config_file: PathLike | None = None

    def output_path(self) -> Path:
        return Path(self.export_path) / f"{self.model_name}{OUTPUT_SUFFIXES[self.archive_format]}"
