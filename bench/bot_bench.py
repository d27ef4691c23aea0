"""The bot's serving figures, measured through the local Bot API stand-in.

    .venv/bin/python -m bench.bot_bench [--users 20] [--photos 10] [--retrain-epochs 3]

(from the repository root: the bench imports the stand-in and the bot fixture from tests.support)

Runs the real bot (`python -m bot`, a child process) and prints:
- time from process start to its first getUpdates (target ≤ 2 s), over a few starts;
- 20 users sending realistic phone photos at once (model/photos.py, MNIST test digits),
  twice: with Telegram's limits (the defaults) and with the limits lifted (RATE_LIMIT=0,
  the bot's own capacity, target ≥ 100 photos/s): photos/s, p50/p99 reply latency, replies
  missing (must be 0), and the most messages the stand-in received in any 1 s, overall and
  in one chat (Telegram: ~30/s overall, ~1/s per chat);
- reply latency while a /retrain runs, against the same bot idle;
- the bot's peak RSS while serving (target ≤ 200 MB; the training child not included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import psutil

from model.photos import photo_set
from tests.support import ADMIN_ID, SAMPLE, BotApiStandIn, BotProcess, most_in_window
from tests.support.conversation import reading

PHOTO_POOL = 40  # distinct photos, reused round-robin
STARTS = 3
REPLY_TIMEOUT_S = 180
RETRAIN_PROBES = 20
SENDS = {"sendMessage", "sendPhoto", "sendMediaGroup"}


@dataclass
class Burst:
    """What one burst of photos from many users at once gave."""

    label: str
    photos: int
    answered: int
    seconds: float
    latencies: list[float]
    correct: int
    max_overall_1s: int
    max_chat_1s: int
    min_chat_gap: float  # shortest time between two messages to one chat, as received
    peak_rss_mb: float
    cpu_ms_per_photo: float  # the bot process's CPU time (all threads) per answered photo

    @property
    def rate(self) -> float:
        return self.answered / self.seconds


class RssSampler:
    """Peak resident memory of one process, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def min_gap(times: list[float]) -> float:
    times = sorted(times)
    return min(np.diff(times), default=float("inf"))


def start_times(tmp: Path) -> list[float]:
    """Seconds from `python -m bot` to its first getUpdates, for a few fresh starts."""
    times = []
    for n in range(STARTS):
        with BotApiStandIn(thumbnails=False).in_thread() as api:
            bot = BotProcess(api, tmp / f"start{n}" / "data").start()
            first = min(c.time for c in api.calls_to("getUpdates", ok_only=False))
            times.append(first - bot.started_at)
            bot.stop()
    return times


def burst(api: BotApiStandIn, bot: BotProcess, photos: list, users: int, per_user: int,
          label: str) -> Burst:
    """Every user sends `per_user` photos at once; wait until all are answered."""
    asked: list[tuple[int, int, float, str]] = []
    first_call = len(api.calls)
    process = psutil.Process(bot.pid)
    cpu_before = sum(process.cpu_times()[:2])
    with RssSampler(bot.pid) as rss:
        started = time.monotonic()
        for k in range(per_user):
            for u in range(users):
                image, truth = photos[(k * users + u) % len(photos)]
                user = 10_000 + u
                asked.append((user, api.send_photo(user, image), time.monotonic(), truth.text))
        replies = []
        for user, mid, sent, truth in asked:
            try:
                call = api.run(api.wait_reply(user, mid, timeout=REPLY_TIMEOUT_S))
            except TimeoutError:
                continue
            replies.append((call, sent, truth))
        seconds = max(c.time for c, _, _ in replies) - started
        cpu = sum(process.cpu_times()[:2]) - cpu_before
    sends = [c for c in api.calls[first_call:] if c.ok and c.method in SENDS]
    return Burst(
        label=label,
        photos=len(asked),
        answered=len(replies),
        seconds=seconds,
        latencies=[c.time - sent for c, sent, _ in replies],
        correct=sum(reading(c) == truth for c, _, truth in replies),
        max_overall_1s=most_in_window([c.time for c in sends]),
        max_chat_1s=max(most_in_window([c.time for c in sends if c.chat_id == 10_000 + u])
                        for u in range(users)),
        min_chat_gap=min(min_gap([c.time for c in sends if c.chat_id == 10_000 + u])
                         for u in range(users)),
        peak_rss_mb=rss.peak_mb,
        cpu_ms_per_photo=cpu / max(1, len(replies)) * 1000,
    )


def probe_latency(api: BotApiStandIn, photos: list, n: int, busy: BotProcess | None = None
                  ) -> list[float]:
    """One photo at a time from rotating users; with `busy`, only while its training runs."""
    latencies = []
    for i in range(n):
        if busy is not None and not busy.training_children():
            break
        user = 20_000 + i % 5
        sent = time.monotonic()
        mid = api.send_photo(user, photos[i % len(photos)][0])
        latencies.append(api.run(api.wait_reply(user, mid, timeout=60)).time - sent)
        time.sleep(0.3)  # a user's pace, and the 1 message/s per chat limit stays out of it
    return latencies


def retrain_latency(tmp: Path, photos: list, epochs: int
                    ) -> tuple[list[float], list[float], float]:
    """Reply latency idle vs while /retrain runs (Telegram's limits on, one photo at a time),
    and the bot's peak RSS through the retrain and the model comparison that ends it."""
    with BotApiStandIn(thumbnails=False).in_thread() as api:
        bot = BotProcess(api, tmp / "retrain" / "data").start()
        try:
            idle = probe_latency(api, photos, RETRAIN_PROBES)
            with RssSampler(bot.pid) as rss:
                api.send_command(ADMIN_ID, "retrain", str(epochs))
                deadline = time.monotonic() + 60
                while not bot.training_children() and time.monotonic() < deadline:
                    time.sleep(0.1)
                during = probe_latency(api, photos, RETRAIN_PROBES * 3, busy=bot)
                api.run(api.wait_message(ADMIN_ID, lambda c: "serving" in c.text
                                         and "meanwhile" not in c.text, timeout=300))
        finally:
            bot.stop()
    return idle, during, rss.peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--photos", type=int, default=10, help="photos per user per burst")
    parser.add_argument("--retrain-epochs", type=int, default=3)
    args = parser.parse_args()
    command = "python -m bench.bot_bench " + " ".join(sys.argv[1:])

    print(f"generating {PHOTO_POOL} photos (model/photos.py, MNIST test digits)...", flush=True)
    photos = photo_set(PHOTO_POOL, "digit", seed=7, mnist_path=SAMPLE)
    results: list[Burst] = []
    with TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        starts = start_times(tmp)
        print(f"start → first getUpdates: {', '.join(f'{s:.2f}' for s in starts)} s", flush=True)
        for label, env in (("Telegram limits", {}), ("limits lifted", {"RATE_LIMIT": "0"})):
            with BotApiStandIn(thumbnails=False).in_thread() as api:
                bot = BotProcess(api, tmp / label.replace(" ", "_") / "data", **env).start()
                try:
                    probe_latency(api, photos, 2)  # warm: first inference, connections
                    results.append(burst(api, bot, photos, args.users, args.photos, label))
                finally:
                    bot.stop()
            print(f"{label}: done", flush=True)
        idle, during, retrain_rss = retrain_latency(tmp, photos, args.retrain_epochs)

    print()
    print(f"$ {command}")
    print(f"{'':22}{'photos':>7}{'lost':>5}{'photos/s':>9}{'p50 s':>7}{'p99 s':>7}"
          f"{'max/s all':>10}{'max/s chat':>11}{'gap s':>7}{'right':>7}{'RSS MB':>8}{'CPU ms':>8}")
    for r in results:
        print(f"{r.label:22}{r.photos:>7}{r.photos - r.answered:>5}{r.rate:>9.1f}"
              f"{pct(r.latencies, 50):>7.2f}{pct(r.latencies, 99):>7.2f}"
              f"{r.max_overall_1s:>10}{r.max_chat_1s:>11}{r.min_chat_gap:>7.2f}"
              f"{r.correct / r.answered:>7.0%}"
              f"{r.peak_rss_mb:>8.0f}{r.cpu_ms_per_photo:>8.0f}")
    print("max/s: the most messages the stand-in received in any 1 s, overall and in one chat; "
          "gap: the shortest time between two messages to one chat")
    print(f"start to first getUpdates: median {statistics.median(starts):.2f} s, "
          f"max {max(starts):.2f} s over {len(starts)} starts (target ≤ 2 s)")
    print(f"reply latency one photo at a time: idle p50 {pct(idle, 50):.2f} s / p99 "
          f"{pct(idle, 99):.2f} s; during /retrain {args.retrain_epochs} p50 "
          f"{pct(during, 50):.2f} s / p99 {pct(during, 99):.2f} s ({len(during)} photos)")
    cpu = results[-1].cpu_ms_per_photo
    print(f"bot CPU per photo (limits lifted): {cpu:.0f} ms → about {1000 / cpu:.0f} photos/s "
          f"per free core; this machine: {psutil.cpu_count()} cores, load average "
          f"{psutil.getloadavg()[0]:.1f} at the end")
    print(f"peak bot RSS while serving: {max(r.peak_rss_mb for r in results):.0f} MB "
          f"(target ≤ 200 MB); through a retrain and its model comparison: {retrain_rss:.0f} MB")


if __name__ == "__main__":
    main()
