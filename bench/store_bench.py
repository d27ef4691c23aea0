"""The store at a million readings: /stats's database time, and whether a /stats delays another
user's photo.

    .venv/bin/python -m bench.store_bench [--predictions 1000000] [--feedback 100000] [--rounds 30]

Fills a fresh DATA_DIR through bot/storage.py (its triggers keep the counters) with
--predictions readings from 50,000 users over the last 150 days, --feedback of them with
feedback and crops, then prints:
- the database time of what /stats reads (the serving version, the live figures, the latency
  histogram's median, the recent latencies for the chart), median and worst of 50 runs —
  target ≤ 100 ms — and, for comparison, the queries /stats ran before the counters;
- against the real bot (`python -m bot`, RATE_LIMIT=0) and the stand-in: a photo's reply
  latency alone, and sent at the same moment as another user's /stats (one getUpdates hands
  out both), --rounds pairs — target: delayed ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import psutil

from bot.models import ModelRegistry
from bot.storage import Storage
from model import RELEASE_DIR
from tests.support import BotApiStandIn, BotProcess
from tests.support.pictures import digit_photo

USERS = 50_000
DAYS = 150
BATCH = 50_000
RUNS = 50
OLD_STATS_SQL = (  # what /stats ran before the counters (for comparison)
    "SELECT COUNT(*), COUNT(DISTINCT user_id) FROM predictions",
    "SELECT COALESCE(SUM(ok), 0), COUNT(*) FROM"
    " (SELECT MIN(confirmed) AS ok FROM feedback GROUP BY prediction_id)",
    "SELECT latency_ms FROM predictions ORDER BY latency_ms LIMIT 1 OFFSET {half}",
)


def fill(storage: Storage, predictions: int, feedback: int, seed: int = 0) -> None:
    """Readings (a crop where feedback follows) and feedback rows, in batches."""
    rng = np.random.default_rng(seed)
    now = time.time()
    with_feedback = set(rng.choice(predictions, feedback, replace=False).tolist())
    for start in range(0, predictions, BATCH):
        n = min(BATCH, predictions - start)
        users = rng.integers(1, USERS + 1, n)
        created = now - rng.uniform(0, DAYS * 86400, n)
        latency = rng.lognormal(np.log(9), 0.35, n)
        digits = rng.integers(0, 10, n)
        rows = []
        for i in range(n):
            crop = os.urandom(784) if start + i in with_feedback else None
            rows.append((int(users[i]), int(users[i]), float(created[i]), "ok", str(digits[i]),
                         0.97, float(latency[i]), 1, crop))
        with storage.transaction() as db:
            db.executemany(
                "INSERT INTO predictions (user_id, chat_id, created_at, status, reading,"
                " confidence, latency_ms, model_version, crop) VALUES (?,?,?,?,?,?,?,?,?)", rows)
    with storage.transaction() as db:
        db.execute(
            "INSERT INTO feedback (prediction_id, user_id, label, confirmed, crop, created_at)"
            " SELECT id, user_id, (CAST(reading AS INTEGER) + (id % 5 = 0)) % 10, id % 5 != 0,"
            " crop, created_at + 5 FROM predictions WHERE crop IS NOT NULL")


def stats_reads(storage: Storage, registry: ModelRegistry) -> float:
    """Seconds for what the /stats handler reads from the database."""
    started = time.perf_counter()
    registry.get(1)
    storage.live_stats()
    storage.recent_latencies()
    return time.perf_counter() - started


def old_stats_reads(path: Path, photos: int) -> float:
    started = time.perf_counter()
    with sqlite3.connect(path) as db:
        for sql in OLD_STATS_SQL:
            db.execute(sql.format(half=photos // 2)).fetchall()
    return time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def photo_delays(data_dir: Path, rounds: int) -> tuple[list[float], list[float], list[float]]:
    """Reply latency of a photo alone, with a /stats at the same moment, and the /stats."""
    alone: list[float] = []
    beside: list[float] = []
    stats: list[float] = []
    image, _ = digit_photo(0)
    with BotApiStandIn(thumbnails=False).in_thread() as api:
        bot = BotProcess(api, data_dir, RATE_LIMIT="0").start()
        try:
            for i in range(rounds + 2):  # the first two warm up (model, connections, charts)
                sent = time.monotonic()
                mid = api.send_photo(2, image)
                solo = api.run(api.wait_reply(2, mid, timeout=60)).time - sent
                time.sleep(0.2)
                with api.at_once():
                    sent = time.monotonic()
                    asked = api.send_command(1, "stats")
                    mid = api.send_photo(2, image)
                photo = api.run(api.wait_reply(2, mid, timeout=60)).time - sent
                answer = api.run(api.wait_reply(1, asked, timeout=60)).time - sent
                time.sleep(0.2)
                if i >= 2:
                    alone.append(solo)
                    beside.append(photo)
                    stats.append(answer)
        finally:
            bot.stop()
    return alone, beside, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--feedback", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    command = "python -m bench.store_bench " + " ".join(sys.argv[1:])
    load_before = psutil.getloadavg()[0]
    with TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        storage = Storage(data_dir / "digitbot.sqlite3")
        registry = ModelRegistry(storage, data_dir / "models", RELEASE_DIR)
        registry.recover()
        started = time.monotonic()
        print(f"filling: {args.predictions:,} readings, {args.feedback:,} feedback rows...",
              flush=True)
        fill(storage, args.predictions, args.feedback)
        fill_s = time.monotonic() - started
        size_mb = sum(p.stat().st_size for p in data_dir.glob("digitbot.sqlite3*")) / 2**20
        live = storage.live_stats()
        times = [stats_reads(storage, registry) for _ in range(RUNS)]
        old = [old_stats_reads(storage.path, live.photos) for _ in range(3)]
        storage.close()
        print("measuring photo latency beside /stats through the real bot...", flush=True)
        alone, beside, stats = photo_delays(data_dir, args.rounds)

    ms = 1000
    print()
    print(f"$ {command}")
    print(f"database: {live.photos:,} readings from {live.users:,} users, "
          f"{live.confirmed + live.corrected:,} feedback rows, {size_mb:.0f} MB "
          f"(filled in {fill_s:.0f} s, counters kept by the triggers)")
    print(f"/stats database time: median {statistics.median(times) * ms:.2f} ms, "
          f"max {max(times) * ms:.2f} ms over {RUNS} runs (target ≤ 100 ms); "
          f"the queries before the counters: {statistics.median(old) * ms:.0f} ms")
    delay = [b - a for a, b in zip(alone, beside, strict=True)]
    print(f"photo reply latency, {len(alone)} rounds: alone p50 {pct(alone, 50) * ms:.0f} ms / "
          f"p90 {pct(alone, 90) * ms:.0f} ms; sent with another user's /stats p50 "
          f"{pct(beside, 50) * ms:.0f} ms / p90 {pct(beside, 90) * ms:.0f} ms")
    print(f"delay from the /stats beside it (paired): median {statistics.median(delay) * ms:.0f}"
          f" ms, p90 {pct(delay, 90) * ms:.0f} ms, max {max(delay) * ms:.0f} ms "
          f"(target ≤ 50 ms); the /stats itself answered in p50 {pct(stats, 50) * ms:.0f} ms")
    print(f"machine: {psutil.cpu_count()} CPUs, load average {load_before:.1f} before, "
          f"{psutil.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
