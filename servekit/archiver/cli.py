"""`servekit-archiver`: the command line of TorchServe's `torch-model-archiver` (archive.md §4).

Unlike TorchServe, a failure prints one `servekit-archiver: error: ...` line and exits with
status 1 instead of a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from servekit.archiver.config import ARCHIVE_FORMATS, ModelArchiverConfig
from servekit.archiver.errors import ModelArchiverError
from servekit.archiver.model_archiver import generate_model_archive
from servekit.archiver.progress import StreamProgress
from servekit.manifest import RUNTIMES

PROG = "servekit-archiver"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Servekit Model Archiver Tool: packages model artifacts into a TorchServe-compatible model archive",
        formatter_class=argparse.RawTextHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--model-name",
        required=True,
        metavar="MODEL_NAME",
        help="Exported model name; the archive is saved as <export-path>/<model-name>.mar.\n"
        "Allowed characters: letters, digits, '_', '-' and '.', starting with a letter or digit.",
    )
    add(
        "--serialized-file",
        metavar="SERIALIZED_FILE",
        help="Path to the weights: a state_dict (.pt/.pth) for eager mode,\n"
        "a TorchScript module (.pt), an ONNX file (.onnx) or an AOT-compiled .so.",
    )
    add(
        "--model-file",
        metavar="MODEL_FILE",
        help="Path to the Python file defining the model class (eager mode).\n"
        "It must contain exactly one class definition.",
    )
    add(
        "--handler",
        required=True,
        metavar="HANDLER",
        help="A built-in handler name (e.g. image_classifier) or the path of a handler .py file;\n"
        "use path/module:function for a custom entry point.",
    )
    add(
        "--extra-files",
        metavar="EXTRA_FILES",
        help="Comma-separated files, directories or glob patterns to include.\n"
        "A directory's content is merged into the archive root.",
    )
    add("--runtime", choices=RUNTIMES, default="python", help="Runtime the model's handler runs in (default: python).")
    add(
        "--export-path",
        default=os.getcwd(),
        metavar="EXPORT_PATH",
        help="Directory the archive is written to; created if missing (default: current directory).",
    )
    add(
        "--archive-format",
        choices=ARCHIVE_FORMATS,
        default="default",
        help="default: .mar (zip, deflated); zip-store: .mar (zip, not compressed);\n"
        "tgz: <model-name>.tar.gz; no-archive: a <model-name>/ directory.",
    )
    add(
        "-f",
        "--force",
        action="store_true",
        help="Overwrite an existing archive (for no-archive: copy over the existing directory).",
    )
    add("-v", "--version", required=True, metavar="VERSION", help="Model version, e.g. 1.0.")
    add(
        "-r",
        "--requirements-file",
        metavar="REQUIREMENTS_FILE",
        help="pip requirements file installed for this model when the server allows it.",
    )
    add("-c", "--config-file", metavar="CONFIG_FILE", help="Model config YAML (workers, batching, ...).")
    return parser


def config_from_args(args: argparse.Namespace) -> ModelArchiverConfig:
    return ModelArchiverConfig(
        model_name=args.model_name,
        handler=args.handler,
        version=args.version,
        serialized_file=args.serialized_file,
        model_file=args.model_file,
        extra_files=args.extra_files,
        runtime=args.runtime,
        export_path=args.export_path,
        archive_format=args.archive_format,
        force=args.force,
        requirements_file=args.requirements_file,
        config_file=args.config_file,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(levelname)s - %(message)s", level=logging.WARNING)
    try:
        generate_model_archive(config_from_args(args), progress=StreamProgress(sys.stderr))
    except ModelArchiverError as exc:
        return _fail(str(exc))
    except OSError as exc:  # permissions, full disk, a file vanishing mid-copy
        where = f": '{exc.filename}'" if exc.filename else ""
        return _fail(f"failed to build the archive: {exc.strerror or exc}{where}")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


def _fail(message: str) -> int:
    # One line, whatever the message contains.
    print(f"{PROG}: error: {' '.join(message.splitlines())}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
