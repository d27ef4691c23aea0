"""The inbox in process (bot/inbox.py): bot.app's own Application polling the stand-in in the
test's event loop. Updates delivered twice are handled once (by polling or by a webhook-style
put), the memory holds a bounded window while the Bot API fails (the rest waits on disk), and
an update whose retries outlasted the deadline is answered later from the inbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from telegram import Update

from bot import replies
from bot.app import BotApplication
from bot.i18n import translator
from bot.inbox import DONE, IN_MEMORY, WAITING
from tests.support import BotApiStandIn
from tests.support.conversation import REPLY_S, until
from tests.support.in_process import running_bot

EN = translator("en")
pytestmark = pytest.mark.timeout(120)


def states(app: BotApplication) -> dict[int, int]:
    inbox = app.bot_data.services.inbox.inbox
    return inbox.states()  # a read of a few rows: fine on the test's loop


async def test_an_update_delivered_again_is_handled_once(api: BotApiStandIn,
                                                         tmp_path: Path) -> None:
    user = 901
    async with running_bot(api, tmp_path / "data") as app:
        mid = api.send_command(user, "help")
        assert (await api.wait_reply(user, mid, timeout=REPLY_S)).text == replies.help_text(EN)
        update_id = api.update_ids[(user, mid)]
        # a webhook hands its updates to the same queue; the inbox knows this one
        again = Update.de_json(api.update(update_id), app.bot)
        await app.update_queue.put(again)
    api.redeliver(update_id)  # the confirmation was lost: Telegram sends it after the restart
    async with running_bot(api, tmp_path / "data") as app:
        later = api.send_command(user, "start")
        assert (await api.wait_reply(user, later, timeout=REPLY_S)).text == replies.help_text(EN)
        # the redelivered update was fetched too (confirmed by the getUpdates after its put)
        await until(lambda: not api.pending_update_ids)
        await until(lambda: states(app) == {DONE: 2})
        assert len(api.replies_to(user, mid)) == 1


async def test_while_sends_fail_updates_wait_on_disk_not_in_memory(api: BotApiStandIn,
                                                                   tmp_path: Path) -> None:
    window = 5
    async with running_bot(api, tmp_path / "data", rate_limit=False,
                           max_concurrent_updates=window, retry_base_s=0.05,
                           retry_max_s=0.2) as app:
        queue = app.bot_data.services.inbox
        api.fail("sendMessage", status=502, times=10**6)  # getUpdates works, sends don't
        users = range(910, 940)
        asked = {user: api.send_command(user, "help") for user in users}
        await until(lambda: sum(states(app).values()) == len(users))
        held = states(app)
        assert queue.held == window and held == {IN_MEMORY: window, WAITING: 25}
        # all confirmed to Telegram (by the getUpdates that follows the last put): on disk
        await until(lambda: not api.pending_update_ids)
        api.clear_faults()
        for user, mid in asked.items():
            assert (await api.wait_reply(user, mid, timeout=REPLY_S)).text == replies.help_text(EN)
        await until(lambda: states(app) == {DONE: len(users)})
        assert all(len(api.replies_to(user, mid)) == 1 for user, mid in asked.items())
        await until(lambda: queue.held == 0)  # settled: nothing left in memory


async def test_an_update_that_outlasted_its_retries_is_answered_later(
        api: BotApiStandIn, tmp_path: Path) -> None:
    user = 950
    async with running_bot(api, tmp_path / "data", rate_limit=False, retry_deadline_s=0.5,
                           retry_base_s=0.05, retry_max_s=0.1) as app:
        api.fail("sendMessage", status=503, times=10**6)
        mid = api.send_command(user, "help")
        await until(lambda: states(app) == {WAITING: 1})  # parked after 0.5 s of failures
        api.clear_faults()
        storage = app.bot_data.services.storage
        await storage.run(storage.execute, "UPDATE inbox SET not_before = 0")  # its wait is over
        (job,) = app.job_queue.get_jobs_by_name("inbox")
        await job.run(app)  # what the JobQueue does every INBOX_RETRY_AFTER_S
        assert (await api.wait_reply(user, mid, timeout=REPLY_S)).text == replies.help_text(EN)
        await until(lambda: states(app) == {DONE: 1})
        failed = [c for c in api.calls_to("sendMessage", ok_only=False) if c.status == 503]
        assert len(failed) >= 3


async def test_unfinished_updates_older_than_inbox_max_age_are_given_up(
        api: BotApiStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    user = 960
    async with running_bot(api, tmp_path / "data", retry_deadline_s=0.2, retry_base_s=0.05,
                           retry_max_s=0.1, inbox_retry_after_s=3600) as app:
        api.fail("sendMessage", status=502, times=10**6)
        api.send_command(user, "help")
        await until(lambda: states(app) == {WAITING: 1})
        storage = app.bot_data.services.storage
        await storage.run(storage.execute, "UPDATE inbox SET received_at = received_at - 90000")
    api.clear_faults()
    async with running_bot(api, tmp_path / "data") as app:  # 25 h later, restarted
        assert states(app) == {}  # given up, and (older than INBOX_MAX_AGE) deleted
        assert not api.messages_to(user)
    assert "1 unfinished updates were older than INBOX_MAX_AGE" in caplog.text


async def test_a_stop_during_an_outage_does_not_wait_for_the_retries(
        api: BotApiStandIn, tmp_path: Path) -> None:
    user = 970
    # each wait between tries is 20-60 s and the deadline 300 s: a stop that waited for them
    # would outlast the timeout; a stop ends the waits, and the update waits in the inbox
    async with asyncio.timeout(REPLY_S):
        async with running_bot(api, tmp_path / "data", retry_base_s=20, retry_max_s=60) as app:
            api.fail("sendMessage", status=502, times=10**6)
            mid = api.send_command(user, "help")
            await until(lambda: bool(api.calls_to("sendMessage", ok_only=False)))
    api.clear_faults()
    async with running_bot(api, tmp_path / "data") as app:  # answered at the next start
        assert (await api.wait_reply(user, mid, timeout=REPLY_S)).text == replies.help_text(EN)
        await until(lambda: states(app) == {DONE: 1})
    assert len(api.replies_to(user, mid)) == 1
