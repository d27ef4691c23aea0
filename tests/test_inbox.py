"""No photo goes unanswered: the real bot (``python -m bot``) through Bot API outages and kills.

The durable inbox (bot/inbox.py) and the retry policy (bot/retry.py) against the stand-in: a
30 s outage in which every call fails with 502 and, side by side, one in which every call hangs
past the client's timeout; a 403 (the user blocked the bot); SIGKILL during a backlog of 100
photos and in the instant after a send. Replies are counted per photo: every photo is answered,
and only one whose reply went out in the instant before the kill (delivered, not yet marked done
in the inbox) is answered a second time."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot import replies
from bot.i18n import translator
from bot.inbox import DONE
from tests.support import BotApiStandIn, BotProcess, Call, kill_on
from tests.support.conversation import REPLY_S, reading
from tests.support.pictures import digit_photo
from tests.support.standin import SEND_METHODS

OUTAGE_S = 30  # the real scenario: Telegram's 5xx spells last seconds to minutes
FAST_RETRIES = {"RETRY_BASE_S": "0.2", "RETRY_MAX_S": "1"}  # waits of 0.2-1 s, 5 min deadline

EN = translator("en")
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def api() -> Iterator[BotApiStandIn]:
    standin = BotApiStandIn(thumbnails=False)
    with standin.in_thread():
        yield standin


@pytest.fixture
def start_bot(api: BotApiStandIn, tmp_path: Path) -> Iterator[Callable[..., BotProcess]]:
    """Start the bot on tmp_path/data (a restart keeps it); stopped and log-checked after."""
    bots: list[BotProcess] = []

    def start(**env: str) -> BotProcess:
        bot = BotProcess(api, tmp_path / "data", **FAST_RETRIES, **env).start()
        bots.append(bot)
        return bot

    yield start
    for bot in bots:
        bot.stop_and_check_log()


def inbox_rows(bot: BotProcess) -> dict[int, int]:
    """update_id -> state, read from the bot's database (read-only, like a backup would)."""
    path = bot.data_dir / "digitbot.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT update_id, state FROM inbox").fetchall())


def wait_inbox_done(bot: BotProcess, count: int, timeout: float = REPLY_S) -> None:
    """Until the inbox holds `count` updates, all done (the bot has nothing left to send)."""
    deadline = time.monotonic() + timeout
    while (rows := inbox_rows(bot)) and not (
            len(rows) == count and set(rows.values()) == {DONE}):
        if time.monotonic() > deadline:
            raise TimeoutError(f"inbox not done within {timeout} s: {rows}")
        time.sleep(0.1)


def when_updates_handed_out(api: BotApiStandIn, then: Callable[[], None]) -> None:
    """Run `then` the moment a getUpdates hands the bot updates (not an empty long poll)."""
    api.on_delivered("getUpdates", lambda call: bool(call.result) and (then() or True))


def outage_scenario(api: BotApiStandIn, start_outage: Callable[[], None]) -> tuple[Call, Call,
                                                                                    float]:
    """A photo and a /help reach the bot; the outage starts right then. Both replies, and
    when the outage ended."""
    began: list[float] = []

    def outage() -> None:
        start_outage()
        began.append(time.monotonic())

    when_updates_handed_out(api, outage)
    image, label = digit_photo(0)
    with api.at_once():  # one getUpdates hands out both
        photo = api.send_photo(501, image)
        command = api.send_command(502, "help")
    reply = api.run(api.wait_reply(501, photo, timeout=OUTAGE_S + REPLY_S))
    answer = api.run(api.wait_reply(502, command, timeout=REPLY_S))
    assert reading(reply) == str(label) and answer.text == replies.help_text(EN)
    assert len(api.replies_to(501, photo)) == 1 and len(api.replies_to(502, command)) == 1
    return reply, answer, began[0] + OUTAGE_S


def test_30s_outages_of_502s_and_of_timeouts_then_both_are_answered(tmp_path: Path) -> None:
    """Two bots side by side, each with its own stand-in (an outage is wall-clock time, not
    CPU): one whose Bot API answers every call 502 for 30 s, one whose every call hangs past
    the bot's 5 s read timeout for 30 s, each starting the moment the bot took a photo and a
    /help from getUpdates. Both are answered after the outage, once."""
    with contextlib.ExitStack() as stack:
        apis = [stack.enter_context(BotApiStandIn(thumbnails=False).in_thread())
                for _ in range(2)]
        bots = [BotProcess(api, tmp_path / name / "data", **FAST_RETRIES).start()
                for api, name in zip(apis, ("fail", "hang"), strict=True)]
        for bot in bots:
            stack.callback(bot.stop_and_check_log)
        failing, hanging = apis
        with ThreadPoolExecutor(2) as pool:
            fail = pool.submit(outage_scenario, failing,
                               lambda: failing.fail_everything(OUTAGE_S, 502))
            hang = pool.submit(outage_scenario, hanging,
                               lambda: hanging.hang_everything(OUTAGE_S, hold=6))
            (reply, answer, ended), (slow_reply, slow_answer, slow_ended) = (
                fail.result(), hang.result())

        assert reply.time >= ended and answer.time >= ended
        during = [c for c in failing.calls if c.status == 502]
        # tried all along with backoff: getFile for the photo, sendMessage for /help, polls
        for method in ("getFile", "sendMessage", "getUpdates"):
            tries = [c for c in during if c.method == method]
            assert 5 <= len(tries) <= 80, (method, len(tries))

        assert slow_reply.time >= slow_ended and slow_answer.time >= slow_ended
        timed_out = [c for c in hanging.calls if c.status == 504 and c.method == "sendMessage"]
        assert len(timed_out) >= 3  # /help's reply, tried again after each timeout
        assert "Timed out" in bots[1].log()
        for bot in bots:
            assert bot.alive()
            wait_inbox_done(bot, 2)


def test_a_403_on_send_ends_the_update_without_retries(api: BotApiStandIn, start_bot) -> None:
    bot = start_bot()
    user = 511
    api.fail("sendMessage", status=403)  # "Forbidden: bot was blocked by the user"
    blocked = api.send_command(user, "help")
    bot.wait_log(f"Update {api.update_ids[(user, blocked)]} ends unanswered")
    wait_inbox_done(bot, 1)  # done: not kept for a later try
    attempts = [c for c in api.calls_to("sendMessage", ok_only=False) if c.chat_id == user]
    assert [c.status for c in attempts] == [403]  # one try, no retries, no "sorry"
    again = api.send_command(user, "help")  # unblocked: the next message is answered
    assert api.run(api.wait_reply(user, again, timeout=REPLY_S)).text == replies.help_text(EN)


def replies_per_photo(api: BotApiStandIn, photos: dict[tuple[int, int], int]) -> dict:
    return {key: len(api.replies_to(*key)) for key in photos}


def check_after_restart(api: BotApiStandIn, bot: BotProcess,
                        photos: dict[tuple[int, int], int],
                        not_done: set[int]) -> set[tuple[int, int]]:
    """Every photo answered with its reading; twice only where the killed process's reply was
    delivered but the inbox had not marked it done (the instant before the kill). Returns
    those photos. (The killed process's replies are those delivered before the restart: a
    request it had sent may reach the stand-in a moment after the kill signal.)"""
    for (user, mid), label in photos.items():
        reply = api.run(api.wait_reply(user, mid, timeout=60))
        assert reading(reply) == str(label), (user, mid)
    wait_inbox_done(bot, len(photos), timeout=60)
    instant = {key for key in photos if api.update_ids[key] in not_done and any(
        c.time < bot.started_at for c in api.replies_to(*key))}
    counts = replies_per_photo(api, photos)
    assert counts == {key: 1 + (key in instant) for key in photos}
    path = bot.data_dir / "digitbot.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:  # each photo stored once
        assert db.execute("SELECT COUNT(*) FROM predictions").fetchone() == (len(photos),)
        assert db.execute("SELECT value FROM counters WHERE name = 'photos'").fetchone() == (
            len(photos),)
    return instant


def test_kill_9_during_a_backlog_of_100_photos(api: BotApiStandIn, start_bot) -> None:
    bot = start_bot(RATE_LIMIT="0")
    killed = kill_on(api, bot, 40, "download")  # mid-backlog: downloading, reading, sending
    photos: dict[tuple[int, int], int] = {}
    with api.at_once():
        for i in range(100):
            user = 600 + i % 10
            image, label = digit_photo(i)
            photos[(user, api.send_photo(user, image))] = label
    assert killed.wait(60)
    assert bot.proc is not None and bot.proc.wait(10) != 0
    rows = inbox_rows(bot)
    # nothing was confirmed to Telegram before it was in the inbox
    assert {api.update_ids[key] for key in photos} <= set(rows) | api.pending_update_ids
    not_done = {u for u, state in rows.items() if state != DONE}
    answered = sum(1 for n in replies_per_photo(api, photos).values() if n)
    assert 0 < answered < 100 and not_done, "the kill was not mid-backlog"
    restarted = start_bot(RATE_LIMIT="0")
    instant = check_after_restart(api, restarted, photos, not_done)
    # at most the photos being answered at that instant: one per user (USER_IN_FLIGHT=1)
    assert len(instant) <= len({user for user, _ in photos})


def test_kill_9_in_the_instant_after_a_send(api: BotApiStandIn, start_bot) -> None:
    bot = start_bot(RATE_LIMIT="0")
    killed = kill_on(api, bot, 2, wanted=lambda call: call.method.lower() in SEND_METHODS)
    photos: dict[tuple[int, int], int] = {}
    for i, user in enumerate((701, 702, 703)):
        image, label = digit_photo(20 + i)
        photos[(user, api.send_photo(user, image))] = label
    assert killed.wait(REPLY_S)
    assert bot.proc is not None and bot.proc.wait(10) != 0
    not_done = {u for u, state in inbox_rows(bot).items() if state != DONE}
    restarted = start_bot(RATE_LIMIT="0")
    instant = check_after_restart(api, restarted, photos, not_done)
    # the reply delivered as the bot died is sent again (and any other one then in flight)
    (second,) = [c for c in api.calls if c.ok and c.method.lower() in SEND_METHODS][1:2]
    assert (second.chat_id, second.reply_to) in instant
