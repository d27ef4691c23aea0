"""Load and soak bench: the real bot (``python -m bot``) through the Bot API stand-in.

1. burst, limits lifted (RATE_LIMIT=0): USERS users send PER_USER photos each at once; every
   photo must be answered; reply latency p50/p99 (photo queued -> reply reaches the API) and
   photos/s (answers / time from the first photo to the last answer) = the bot's own capacity.
2. the same burst with Telegram's limits (the bot's defaults: 30 msg/s overall, 1 msg/s per
   chat): the same figures plus the busiest second overall and the closest two messages in
   one chat, to show the bot holds Telegram's line.
3. soak, limits lifted: SOAK photos in waves; the bot's RSS (psutil) after a warm-up and after
   every wave -- memory must stay flat.

Photos are realistic phone photos of MNIST *test* handwriting from model/photos.py (80% single
digits, 20% numbers, which get the annotated photo back), reused round-robin.

    .venv/bin/python -m bench.load_bench                    # the figures for docs/README
    .venv/bin/python -m bench.load_bench --users 20 --per-user 2 --soak 200 --no-limited  # quick

(from the repository root: the bench imports the stand-in and the bot fixture from tests.support)
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from model.photos import photo_set
from tests.support import ROOT, BotApiStandIn, BotProcess
from tests.support.standin import SEND_METHODS

FIRST_USER = 10_000
START_TIMEOUT_S = 60
MB = 1024 * 1024


@dataclass
class Burst:
    name: str
    sent: int
    answered: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    photos_per_s: float
    busiest_second: int  # most messages the bot sent in any 1 s window
    mean_msg_per_s: float  # messages the bot sent / the burst's span
    min_chat_gap_s: float  # closest two messages in one chat (as they reached the API)
    bot_cpu_ms: float = 0.0  # the bot's CPU time (user + system) per photo


def make_photos(unique: int, seed: int) -> list[bytes]:
    numbers = max(1, unique // 5)
    photos = photo_set(unique - numbers, "digit", seed=seed) + photo_set(numbers, "number",
                                                                          seed=seed)
    return [data for data, _ in photos]


def collect(api: BotApiStandIn, asked: dict[tuple[int, int], float],
            timeout: float) -> dict[tuple[int, int], float]:
    """Reply arrival time for each (chat, message id) asked, scanning the calls as they come."""
    answered: dict[tuple[int, int], float] = {}
    seen = 0
    deadline = time.monotonic() + timeout
    while len(answered) < len(asked) and time.monotonic() < deadline:
        calls = api.calls
        while seen < len(calls):
            call = calls[seen]
            is_send = call.method.lower() in SEND_METHODS
            if is_send and not call.status:  # still in flight: look again next round
                break
            key = (call.chat_id or 0, call.reply_to or 0)
            if is_send and call.ok and key in asked and key not in answered:
                answered[key] = call.time
            seen += 1
        time.sleep(0.05)
    return answered


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def burst(api: BotApiStandIn, name: str, photos: list[bytes], users: int,
          per_user: int, timeout: float) -> Burst:
    asked: dict[tuple[int, int], float] = {}
    first = len(api.calls)
    for round_ in range(per_user):
        for u in range(users):
            user = FIRST_USER + u
            data = photos[(round_ * users + u) % len(photos)]
            asked[(user, api.send_photo(user, data))] = time.monotonic()
    answered = collect(api, asked, timeout)
    latencies = [(answered[k] - asked[k]) * 1000 for k in answered]
    span = max(answered.values()) - min(asked.values()) if answered else float("inf")
    sends = [c for c in api.calls[first:] if c.ok and c.method.lower() in SEND_METHODS]
    gaps = []
    for user in range(FIRST_USER, FIRST_USER + users):
        times = sorted(c.time for c in sends if c.chat_id == user)
        gaps += [b - a for a, b in zip(times, times[1:], strict=False)]
    times = sorted(c.time for c in sends)
    busiest, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        busiest = max(busiest, end - start + 1)
    return Burst(name, len(asked), len(answered), percentile(latencies, 50),
                 percentile(latencies, 99), max(latencies), len(answered) / span, busiest,
                 len(sends) / span, min(gaps) if gaps else float("nan"))


def start_bot(api: BotApiStandIn, data_dir: Path, **env: str) -> BotProcess:
    """``python -m bot`` pointed at the stand-in, logging warnings only; returns once it polls."""
    return BotProcess(api, data_dir, LOG_LEVEL="WARNING", **env).start(START_TIMEOUT_S)


def cpu_s(proc: BotProcess) -> float:
    times = psutil.Process(proc.pid).cpu_times()
    return times.user + times.system


def rss_mb(proc: BotProcess) -> float:
    return psutil.Process(proc.pid).memory_info().rss / MB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--per-user", type=int, default=5)
    parser.add_argument("--soak", type=int, default=2000, help="photos in the soak (0: skip)")
    parser.add_argument("--wave", type=int, default=200, help="soak photos per wave")
    parser.add_argument("--unique", type=int, default=100, help="distinct photos generated")
    parser.add_argument("--no-limited", action="store_true", help="skip Telegram's limits")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t0 = time.monotonic()
    load_start = os.getloadavg()[0]
    photos = make_photos(args.unique, args.seed)
    print(f"{len(photos)} distinct photos generated in {time.monotonic() - t0:.1f} s; "
          f"{os.cpu_count()} CPUs", flush=True)
    bursts: list[Burst] = []
    soak_rows: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp:
        phases = [("limits lifted", {"RATE_LIMIT": "0"})]
        if not args.no_limited:
            phases.append(("Telegram limits", {}))
        for i, (name, env) in enumerate(phases):
            with BotApiStandIn(thumbnails=False).in_thread() as api:
                proc = start_bot(api, Path(tmp) / f"burst{i}", **env)
                try:
                    total = args.users * args.per_user
                    cpu_before = cpu_s(proc)
                    result = burst(api, name, photos, args.users, args.per_user,
                                   timeout=60 + total / 10)
                    result.bot_cpu_ms = (cpu_s(proc) - cpu_before) * 1000 / result.sent
                finally:
                    proc.stop()
            bursts.append(result)
            print(f"  {name}: {result.answered}/{result.sent} answered", flush=True)

        if args.soak:
            with BotApiStandIn(thumbnails=False).in_thread() as api:
                proc = start_bot(api, Path(tmp) / "soak", RATE_LIMIT="0")
                try:
                    burst(api, "warm-up", photos, 50, 1, timeout=60)
                    soak_rows.append((0, rss_mb(proc)))
                    done = 0
                    while done < args.soak:
                        wave = min(args.wave, args.soak - done)
                        users = min(100, wave)
                        result = burst(api, "soak", photos[done % len(photos):] + photos,
                                       users, -(-wave // users), timeout=120)
                        done += result.answered
                        soak_rows.append((done, rss_mb(proc)))
                        if result.answered < result.sent:
                            print(f"  soak: {result.sent - result.answered} unanswered!")
                            break
                finally:
                    proc.stop()

    print(f"\nburst: {args.users} users x {args.per_user} photos at once through the stand-in")
    print(f"{'mode':<16}{'answered':>9}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}"
          f"{'photos/s':>9}{'msg/s':>7}{'max msg/1s':>11}{'min gap/chat':>13}"
          f"{'bot CPU/photo':>14}")
    for b in bursts:
        print(f"{b.name:<16}{f'{b.answered}/{b.sent}':>9}{b.p50_ms:>8.0f}{b.p99_ms:>8.0f}"
              f"{b.max_ms:>8.0f}{b.photos_per_s:>9.1f}{b.mean_msg_per_s:>7.1f}"
              f"{b.busiest_second:>11}{b.min_chat_gap_s:>12.2f}s{b.bot_cpu_ms:>11.0f} ms")
    if soak_rows:
        print("\nsoak (limits lifted): bot RSS, MB, after N photos")
        print("  ".join(f"{n}: {mb:.0f}" for n, mb in soak_rows))
        growth = soak_rows[-1][1] - soak_rows[0][1]
        print(f"start {soak_rows[0][1]:.0f} MB -> end {soak_rows[-1][1]:.0f} MB "
              f"({growth:+.0f} MB over {soak_rows[-1][0]} photos; peak "
              f"{max(mb for _, mb in soak_rows):.0f} MB)")
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {load_start:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at end (other processes share the CPUs)")
    command = [os.path.relpath(sys.executable, ROOT), "-m", "bench.load_bench", *sys.argv[1:]]
    print(f"total {time.monotonic() - t0:.0f} s; command: {shlex.join(command)}")


if __name__ == "__main__":
    main()
