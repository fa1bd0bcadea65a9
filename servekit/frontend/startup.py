"""Models named by `load_models` / `--models`, registered when the server starts (config.md §6)."""

from __future__ import annotations

import logging
from pathlib import Path

from servekit.config import Config
from servekit.errors import ServekitError
from servekit.frontend.models import ModelManager, RegisterRequest

log = logging.getLogger("servekit.startup")
ARCHIVE_SUFFIXES = (".mar", ".model", ".tar.gz")


def startup_entries(config: Config) -> list[tuple[str | None, str]]:
    value = (config.load_models or "").strip()
    if not value:
        return []
    if value.lower() == "all":
        store = Path(config.model_store or ".")
        names = sorted(p.name for p in store.iterdir() if not p.name.startswith("."))
        return [(None, n) for n in names if (store / n).is_dir() or n.endswith(ARCHIVE_SUFFIXES)]
    entries = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, location = item.partition("=")
        entries.append((name, location) if sep else (None, item))
    return entries


async def load_startup_models(manager: ModelManager, config: Config) -> None:
    """Register each startup model; workers load in the background. A failing model is skipped."""
    for name, location in startup_entries(config):
        request = RegisterRequest(url=location, model_name=name, synchronous=False)
        try:
            outcome = await manager.register(request, loaded_at_startup=True)
            log.info("Loading model %s: %s", location, outcome.message)
        except ServekitError as exc:
            log.error("Failed to load model: %s (%s)", location, exc.message)
