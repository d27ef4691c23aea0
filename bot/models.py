"""Model versions: the release is version 1 (never modified); retrained ones live in
DATA_DIR/models/<version>/. Which one serves is recorded in the database, switched in one
commit, and a version directory appears by an atomic rename only once its files are complete
and fsynced, so a kill at any moment leaves a complete active model."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bot.storage import ModelVersion, Storage
from model.recognize import Recognizer

log = logging.getLogger(__name__)

RELEASE_VERSION = 1
MODEL_FILE = "model.tflite"
TRAINING_PREFIX = ".training-"  # unfinished runs; removed at start


@dataclass(frozen=True)
class ServingModel:
    """What the handlers use; replaced as a whole (hot swap) by promote/rollback."""

    version: int
    path: Path
    recognizer: Recognizer


def read_metrics(model_dir: Path) -> dict:
    """metrics.json of a model directory ({} when absent or unreadable)."""
    try:
        return json.loads((model_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


class ModelRegistry:
    """Versions on disk + in the database; loads the active one."""

    def __init__(self, storage: Storage, models_dir: Path, release_dir: Path) -> None:
        self.storage = storage
        self.models_dir = models_dir
        self.release_dir = release_dir
        models_dir.mkdir(parents=True, exist_ok=True)

    def recover(self) -> None:
        """At start: register the release, drop half-finished runs and orphan directories."""
        known = {v.version for v in self.storage.model_versions()}
        if RELEASE_VERSION not in known:
            metrics = read_metrics(self.release_dir)
            self.storage.add_model_version(
                RELEASE_VERSION, self.release_dir, metrics.get("test_accuracy"),
                metrics.get("created_at"), activate=True, note="release",
            )
            known.add(RELEASE_VERSION)
        for entry in self.models_dir.iterdir():
            orphan = entry.name.isdigit() and int(entry.name) not in known
            if entry.name.startswith(TRAINING_PREFIX) or orphan:
                log.info("Removing unfinished model directory %s", entry)
                shutil.rmtree(entry, ignore_errors=True)
        active = self.active()
        if active is None or not (active.path / MODEL_FILE).is_file():
            log.error("Active model %s is missing; serving the release", active)
            self.storage.activate(RELEASE_VERSION)

    def versions(self) -> list[ModelVersion]:
        return self.storage.model_versions()

    def active(self) -> ModelVersion | None:
        return next((v for v in self.versions() if v.active), None)

    def get(self, version: int) -> ModelVersion | None:
        return next((v for v in self.versions() if v.version == version), None)

    def load(self, version: ModelVersion) -> ServingModel:
        """Load a version's LiteRT model (blocking: call it in a thread)."""
        return ServingModel(version.version, version.path, Recognizer(version.path / MODEL_FILE))

    def training_dir(self) -> Path:
        """A fresh directory name for `model.train --out` (not a version until installed)."""
        return self.models_dir / f"{TRAINING_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}"

    def install(self, run_dir: Path, test_accuracy: float, *, activate: bool, note: str,
                scores: str | None = None) -> int:
        """Make a finished run a version: fsync its files, rename it into place, record it."""
        version = max((v.version for v in self.versions()), default=RELEASE_VERSION) + 1
        final = self.models_dir / str(version)
        for file in run_dir.iterdir():
            if file.is_file():
                _fsync(file)
        _fsync(run_dir)
        os.replace(run_dir, final)  # atomic: the version directory is complete or absent
        _fsync(self.models_dir)
        created = read_metrics(final).get("created_at")
        self.storage.add_model_version(
            version, final, test_accuracy, created, activate=activate, note=note, scores=scores
        )
        return version

    def rollback_target(self) -> ModelVersion | None:
        """The newest version below the active one that has served before."""
        active = self.active()
        older = [
            v for v in self.versions()
            if active and v.version < active.version and v.promoted_at is not None
        ]
        return older[-1] if older else None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
