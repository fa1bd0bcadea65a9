"""servekit-archiver: build TorchServe-compatible model archives; safe unpacking for the server.

Nothing in this package imports torch: the server imports `servekit.archiver.extract`.
"""

from __future__ import annotations

from servekit.archiver.config import ModelArchiverConfig
from servekit.archiver.errors import ModelArchiverError
from servekit.archiver.model_archiver import generate_model_archive

__all__ = ["ModelArchiverConfig", "ModelArchiverError", "generate_model_archive"]
