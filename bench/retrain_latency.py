"""Reply latency while /retrain trains on the serving machine, against the same bot idle.

    .venv/bin/python -m bench.retrain_latency                 # the default: a fine-tune
    .venv/bin/python -m bench.retrain_latency --start scratch # a full new model (20-40 min)
    .venv/bin/python -m bench.retrain_latency --epochs 1      # a short run, to try the script

The real bot (`python -m bot`, a child process) against the Bot API stand-in, with the training
data of MNIST_PATH (the full MNIST by default) and the bot's default RETRAIN_FROM,
RETRAIN_NICE and RETRAIN_THREADS (override with --start / --nice / --threads). Realistic phone
photos (model/photos.py, MNIST test digits) go one at a time from rotating users, one every
--interval seconds: first idle, then from the admin's /retrain until its final report
(training, then both models scored on the test split). Prints p50/p99/max reply latency of
both phases, the retrain's wall time, the CPU the training process used (in cores) and its
outcome.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import psutil

from bench.bot_bench import pct
from bot.config import Settings
from model.photos import photo_set
from tests.support import ADMIN_ID, SAMPLE, BotApiStandIn, BotProcess

PHOTO_POOL = 40
REPLY_TIMEOUT_S = 60
USERS = 5  # rotating, so Telegram's 1 message/s per chat never paces a reply


class TrainingCpu:
    """CPU seconds of the bot's training child, read whenever asked (it may end any time)."""

    def __init__(self, bot: BotProcess) -> None:
        self.bot = bot
        self.seconds: dict[int, float] = {}
        self.first_seen: float | None = None
        self.last_seen: float | None = None

    def sample(self) -> None:
        for child in psutil.Process(self.bot.pid).children(recursive=True):
            try:
                if "model.train" not in " ".join(child.cmdline()):
                    continue
                times = child.cpu_times()
            except psutil.Error:  # it just ended
                continue
            now = time.monotonic()
            self.first_seen = self.first_seen or now
            self.last_seen = now
            self.seconds[child.pid] = times.user + times.system

    @property
    def cores(self) -> float | None:
        if self.first_seen is None or self.last_seen is None or self.last_seen == self.first_seen:
            return None
        return sum(self.seconds.values()) / (self.last_seen - self.first_seen)


def probe(api: BotApiStandIn, photos: list, i: int, first_user: int = 30_000) -> float:
    """Send photo i from one of the users; seconds until the bot's reply arrived."""
    user = first_user + i % USERS
    sent = time.monotonic()
    mid = api.send_photo(user, photos[i % len(photos)][0])
    return api.run(api.wait_reply(user, mid, timeout=REPLY_TIMEOUT_S)).time - sent


def row(label: str, latencies: list[float]) -> str:
    return (f"{label:18}{len(latencies):>7}{pct(latencies, 50):>8.3f}{pct(latencies, 99):>8.3f}"
            f"{max(latencies):>8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, help="default: model.train's own (a full run)")
    parser.add_argument("--data", type=Path, default=os.environ.get("MNIST_PATH"),
                        help="training data (default: $MNIST_PATH)")
    parser.add_argument("--idle", type=int, default=60, help="photos before the retrain")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between photos")
    parser.add_argument("--nice", type=int, help="RETRAIN_NICE (default: the bot's)")
    parser.add_argument("--threads", type=int, help="RETRAIN_THREADS (default: the bot's)")
    parser.add_argument("--start", choices=("serving", "scratch"),
                        help="RETRAIN_FROM (default: the bot's)")
    args = parser.parse_args()
    if args.data is None or not Path(args.data).is_file():
        sys.exit("set MNIST_PATH or --data to the MNIST .npz to train on")
    command = "python -m bench.retrain_latency " + " ".join(sys.argv[1:])
    defaults = Settings.model_fields
    nice = defaults["retrain_nice"].default if args.nice is None else args.nice
    threads = defaults["retrain_threads"].default if args.threads is None else args.threads
    start = args.start or defaults["retrain_from"].default
    env = {"MNIST_PATH": str(Path(args.data).resolve()), "RETRAIN_NICE": str(nice),
           "RETRAIN_THREADS": str(threads),  # the tests' bots train at niceness 0
           "RETRAIN_FROM": start}  # and from scratch

    print(f"generating {PHOTO_POOL} photos (model/photos.py, MNIST test digits)...", flush=True)
    photos = photo_set(PHOTO_POOL, "digit", seed=11, mnist_path=SAMPLE)
    load_before = psutil.getloadavg()[0]
    with TemporaryDirectory() as tmp, BotApiStandIn(thumbnails=False).in_thread() as api:
        bot = BotProcess(api, Path(tmp) / "data", **env).start()
        try:
            for i in range(3):  # warm up (first inference, connections) as other users, so
                probe(api, photos, i, first_user=40_000)  # no chat's 1 message/s limit waits
            idle = []
            for i in range(args.idle):
                idle.append(probe(api, photos, i))
                time.sleep(args.interval)
            print(f"idle: {len(idle)} photos", flush=True)

            started = time.monotonic()
            api.send_command(ADMIN_ID, "retrain", str(args.epochs or ""))
            cpu = TrainingCpu(bot)
            during: list[float] = []
            report = None
            while report is None:
                during.append(probe(api, photos, len(during)))
                cpu.sample()
                report = next((c for c in api.messages_to(ADMIN_ID) if c.time > started and (
                    "serving" in c.text or "failed" in c.text or "Kept" in c.text)
                    and "meanwhile" not in c.text), None)
                if len(during) % 60 == 0:
                    print(f"  {len(during)} photos during the retrain, "
                          f"{time.monotonic() - started:.0f} s", flush=True)
                time.sleep(args.interval)
            wall = report.time - started
        finally:
            bot.stop()

    print()
    print(f"$ {command}")
    print(f"reply latency, one photo at a time every {args.interval:g} s, real bot via the "
          f"stand-in (seconds)")
    print(f"{'':18}{'photos':>7}{'p50':>8}{'p99':>8}{'max':>8}")
    print(row("idle", idle))
    print(row("during /retrain", during))
    cores = cpu.cores
    print(f"/retrain {args.epochs or '(default epochs)'} on {Path(args.data).name}, "
          f"RETRAIN_FROM={start}, RETRAIN_NICE={nice}, RETRAIN_THREADS={threads}: "
          f"{wall:.0f} s to its report; "
          f"the training used {'n/a' if cores is None else f'{cores:.2f}'} cores on average")
    print(f"report: {report.text}")
    print(f"machine: {psutil.cpu_count()} CPUs, load average {load_before:.1f} before, "
          f"{psutil.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
