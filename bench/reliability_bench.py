"""No photo goes unanswered: the real bot through outages, kills and a flood, with counts.

    .venv/bin/python -m bench.reliability_bench [--outage-s 30] [--photos 100]

Runs `python -m bot` against the stand-in (tests/support) and counts, per scenario, the photos
sent, answered, answered twice and lost (never answered):
- a Bot API outage: every call answered 502 for --outage-s seconds, starting the moment the
  bot took a first batch of photos from getUpdates; more photos are sent during it;
- the same with every call hanging past the bot's 5 s read timeout;
- SIGKILL during a backlog of --photos photos (at the 40th download), then a restart;
- SIGKILL in the instant after a reply was delivered (the 30th), then a restart;
- a flood: one user sends --photos photos at once, another user one photo right after.
A photo answered twice must be one whose reply was delivered while the inbox had not yet
marked it done (on its way at the kill); the bench says how many were.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import psutil

from bot.inbox import DONE
from tests.support import BotApiStandIn, BotProcess, Call, kill_on
from tests.support.conversation import reading
from tests.support.pictures import digit_photo
from tests.support.standin import SEND_METHODS

FAST_RETRIES = {"RETRY_BASE_S": "0.5", "RETRY_MAX_S": "2"}
WAIT_S = 120


@dataclass
class Outcome:
    scenario: str
    sent: int
    answered: int
    twice: int
    lost: int
    wrong: int
    note: str


Photos = dict[tuple[int, int], str]  # (user, message id) -> the digit written


def send_photos(api: BotApiStandIn, users: list[int], per_user: int, first: int) -> Photos:
    photos: Photos = {}
    with api.at_once():
        for k in range(per_user):
            for j, user in enumerate(users):
                image, label = digit_photo(first + k * len(users) + j)
                photos[(user, api.send_photo(user, image))] = str(label)
    return photos


def settle(api: BotApiStandIn, bot: BotProcess, photos: Photos) -> None:
    """Until every photo is answered and the bot's inbox is all done (or WAIT_S)."""
    deadline = time.monotonic() + WAIT_S
    for user, mid in photos:
        try:
            api.run(api.wait_reply(user, mid, timeout=max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            break
    while time.monotonic() < deadline and set(inbox(bot).values()) - {DONE}:
        time.sleep(0.1)


def inbox(bot: BotProcess) -> dict[int, int]:
    with sqlite3.connect(f"file:{bot.data_dir / 'digitbot.sqlite3'}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT update_id, state FROM inbox").fetchall())


def count(scenario: str, api: BotApiStandIn, photos: Photos, note: str) -> Outcome:
    replies = {key: api.replies_to(*key) for key in photos}
    wrong = sum(1 for key, calls in replies.items() if calls and reading(calls[0]) != photos[key])
    return Outcome(scenario, len(photos), sum(1 for c in replies.values() if c),
                   sum(1 for c in replies.values() if len(c) > 1),
                   sum(1 for c in replies.values() if not c), wrong, note)


def outage(tmp: Path, name: str, start: Callable[[BotApiStandIn, float], None],
           seconds: float) -> Outcome:
    with BotApiStandIn(thumbnails=False).in_thread() as api:
        bot = BotProcess(api, tmp / name / "data", **FAST_RETRIES).start()
        began: list[float] = []

        def hook(call: Call) -> bool:
            if not call.result:
                return False
            start(api, seconds)
            began.append(time.monotonic())
            return True

        api.on_delivered("getUpdates", hook)
        photos = send_photos(api, list(range(100, 120)), 1, 0)  # taken, then the outage
        while not began:
            time.sleep(0.01)
        time.sleep(min(2.0, seconds / 2))
        photos |= send_photos(api, list(range(120, 130)), 1, 20)  # sent during the outage
        settle(api, bot, photos)
        ended = began[0] + seconds
        last = max((c.time for key in photos for c in api.replies_to(*key)), default=ended)
        tries = sum(1 for c in api.calls if c.status in (502, 504))
        bot.stop()
    return count(f"{name} {seconds:.0f} s", api, photos,
                 f"last answer {last - ended:.1f} s after it ended; {tries} calls failed")


def kill_scenario(tmp: Path, name: str, wanted: Callable[[Call], bool], nth: int,
                  total: int) -> Outcome:
    with BotApiStandIn(thumbnails=False).in_thread() as api:
        data = tmp / name.replace(" ", "_") / "data"
        bot = BotProcess(api, data, RATE_LIMIT="0").start()
        killed = kill_on(api, bot, nth, wanted=wanted)
        users = list(range(300, 310))
        photos = send_photos(api, users, total // len(users), 0)
        killed.wait(WAIT_S)
        assert bot.proc is not None
        bot.proc.wait(10)
        before = sum(1 for key in photos if api.replies_to(*key))
        not_done = {u for u, state in inbox(bot).items() if state != DONE}
        restarted = BotProcess(api, data, RATE_LIMIT="0").start()
        settle(api, restarted, photos)
        on_the_way = {key for key in photos if api.update_ids[key] in not_done and any(
            c.time < restarted.started_at for c in api.replies_to(*key))}
        twice = {key for key in photos if len(api.replies_to(*key)) > 1}
        restarted.stop()
    return count(name, api, photos, f"{before} answered before the kill; {len(on_the_way)} "
                 f"replies were on their way at the kill; twice and not among them: "
                 f"{len(twice - on_the_way)}")


def flood(tmp: Path, total: int) -> Outcome:
    with BotApiStandIn(thumbnails=False).in_thread() as api:
        bot = BotProcess(api, tmp / "flood" / "data", RATE_LIMIT="0").start()
        photos = send_photos(api, [400], total, 0)
        image, label = digit_photo(total)
        other = api.send_photo(401, image)
        photos[(401, other)] = str(label)
        settle(api, bot, photos)
        theirs = api.replies_to(401, other)
        ahead = sum(1 for key in photos if key[0] == 400 and theirs and any(
            c.time < theirs[0].time for c in api.replies_to(*key)))
        bot.stop()
    return count(f"flood: {total} photos + 1 other", api, photos,
                 f"the other user was answered after {ahead} of the flood's {total}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage-s", type=float, default=30)
    parser.add_argument("--photos", type=int, default=100)
    args = parser.parse_args()
    command = "python -m bench.reliability_bench " + " ".join(sys.argv[1:])
    load_before = psutil.getloadavg()[0]
    outcomes = []
    with TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, start in (
            ("502 outage", lambda api, s: api.fail_everything(s, 502)),
            ("timeouts", lambda api, s: api.hang_everything(s, hold=6)),
        ):
            outcomes.append(outage(tmp, name, start, args.outage_s))
            print(f"{name}: done", flush=True)
        outcomes.append(kill_scenario(tmp, "kill -9 mid-backlog (40th download)",
                                      lambda c: c.method == "download", 40, args.photos))
        print("kill mid-backlog: done", flush=True)
        outcomes.append(kill_scenario(tmp, "kill -9 after a send (30th reply)",
                                      lambda c: c.method.lower() in SEND_METHODS, 30,
                                      args.photos))
        print("kill after a send: done", flush=True)
        outcomes.append(flood(tmp, args.photos))

    print()
    print(f"$ {command}")
    print(f"{'scenario':38}{'sent':>6}{'answered':>9}{'twice':>6}{'lost':>5}{'wrong':>6}  note")
    for o in outcomes:
        print(f"{o.scenario:38}{o.sent:>6}{o.answered:>9}{o.twice:>6}{o.lost:>5}{o.wrong:>6}"
              f"  {o.note}")
    print("twice: answered twice (only replies on their way at a kill may be); wrong: the first "
          "answer's reading differs from the digit written")
    print(f"machine: {psutil.cpu_count()} CPUs, load average {load_before:.1f} before, "
          f"{psutil.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
