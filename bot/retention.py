"""Data kept no longer than needed: a periodic JobQueue job applies DATA_RETENTION_DAYS to
every per-user table (storage.USER_TABLES) and keeps the last RETRAIN_KEEP_RUNS retrain runs.

Readings older than the limit lose their user and chat ids and their crop; feedback that old is
deleted. /stats's totals are counters kept on write, so they stay. The work goes in batches of
a thousand rows, each its own commit, so users' photos get the database between them.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

from bot.config import Settings
from bot.storage import USER_TABLES, Storage

log = logging.getLogger(__name__)


def prune_runs(root: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` run directories under `root` (named by their start
    time, YYYYmmdd-HHMMSS); the ones deleted."""
    if not root.is_dir():
        return []
    runs = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.name)
    old = runs[:-keep] if keep else runs
    for run in old:
        shutil.rmtree(run, ignore_errors=True)
    return old


class Retention:
    """DATA_RETENTION_DAYS and RETRAIN_KEEP_RUNS, applied by `job` (run_repeating)."""

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.settings = settings

    async def apply(self) -> dict[str, int]:
        """Expire what is older than the limit; {what: rows deleted or anonymised}."""
        cutoff = time.time() - self.settings.data_retention_days * 86400
        done: dict[str, int] = {}
        for table in USER_TABLES:
            done[table.what] = 0
            while count := await self.storage.run(self.storage.expire_batch, table, cutoff):
                done[table.what] += count
        pruned = await asyncio.to_thread(prune_runs, self.settings.data_dir / "retrain",
                                         self.settings.retrain_keep_runs)
        if any(done.values()) or pruned:
            log.info("Retention (%g days): %s; %d old retrain runs deleted",
                     self.settings.data_retention_days,
                     ", ".join(f"{n} {what}" for what, n in done.items()), len(pruned))
        return done

    async def job(self, _context: object) -> None:
        """The JobQueue callback."""
        await self.apply()
