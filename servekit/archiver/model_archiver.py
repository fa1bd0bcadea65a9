"""Build one model archive: validate, map the inputs, pack, manifest last (archive.md §4.1)."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path

from servekit.archiver.config import ARCHIVE_FORMATS, ModelArchiverConfig, PathLike
from servekit.archiver.errors import ModelArchiverError
from servekit.archiver.plan import build_plan
from servekit.archiver.progress import Progress, SilentProgress
from servekit.archiver.writers import write_output
from servekit.manifest import CREATED_ON_FORMAT, RUNTIMES, Manifest, ModelSection
from servekit.version import TORCHSERVE_COMPAT_VERSION

logger = logging.getLogger("servekit.archiver")

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$"
# The manifest format written is that of TorchServe's archiver at this version.
ARCHIVER_VERSION = TORCHSERVE_COMPAT_VERSION


def generate_model_archive(config: ModelArchiverConfig, progress: Progress | None = None) -> Path:
    """Build the archive described by `config` and return the path written.

    Every input is checked before anything is written; `progress` (silent by default) is told
    about large files as they are packed.
    """
    manifest = build_manifest(config)  # the timestamp is taken first, as in TorchServe
    _check_options(config)
    export_dir = Path(config.export_path)
    output = config.output_path()
    _check_export_dir(export_dir)
    overwrite = _check_output(output, config.force)
    entries = build_plan(config).entries()
    if overwrite:
        logger.warning("Overwriting %s ...", output)
    if not export_dir.exists():
        logger.warning("Export directory (%s) does not exist. Creating...", export_dir)
        export_dir.mkdir(parents=True)
    write_output(
        entries, manifest.to_json(), output, config.archive_format, config.model_name, progress or SilentProgress()
    )
    logger.info("Successfully exported model %s to file %s", config.model_name, export_dir)
    return output


def build_manifest(config: ModelArchiverConfig) -> Manifest:
    model = ModelSection(
        model_name=config.model_name,
        serialized_file=_last_component(config.serialized_file),
        handler=_last_component(config.handler),
        model_file=_last_component(config.model_file),
        model_version=config.version,
        requirements_file=_last_component(config.requirements_file),
        config_file=_last_component(config.config_file),
    )
    return Manifest(
        model=model,
        runtime=config.runtime,
        created_on=datetime.now().strftime(CREATED_ON_FORMAT),
        archiver_version=ARCHIVER_VERSION,
    )


def _check_options(config: ModelArchiverConfig) -> None:
    if not re.fullmatch(MODEL_NAME_PATTERN, config.model_name):
        raise ModelArchiverError(
            f"model name '{config.model_name}' contains special characters: the allowed regular "
            f"expression filter for model name is {MODEL_NAME_PATTERN}"
        )
    if config.archive_format not in ARCHIVE_FORMATS:
        raise ModelArchiverError(f"archive format '{config.archive_format}' is not one of {', '.join(ARCHIVE_FORMATS)}")
    if config.runtime not in RUNTIMES:
        raise ModelArchiverError(f"runtime '{config.runtime}' is not one of {', '.join(RUNTIMES)}")
    if not config.handler:
        raise ModelArchiverError("a handler is required: a built-in handler name or a handler .py file")


def _check_export_dir(export_dir: Path) -> None:
    if export_dir.exists() and not export_dir.is_dir():
        raise ModelArchiverError(
            f"Given export-path {export_dir} is not a directory. Point to a valid export-path directory."
        )


def _check_output(output: Path, force: bool) -> bool:
    """Whether an existing output will be overwritten; raises if that needs --force."""
    if not output.exists():
        return False
    if not force:
        raise ModelArchiverError(
            f"{output} already exists. Please specify --force/-f option to overwrite the model archive output file."
        )
    return True


def _last_component(path: PathLike | None) -> str | None:
    if path is None or str(path) == "":
        return None
    return str(path).split("/")[-1]
