"""The bot's Bot API client (bot/request.py, PTB's BaseRequest over aiohttp) and its rate
limiter's retries (bot/ratelimit.py, bot/retry.py's policy), against the stand-in in the same
event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, TimedOut
from telegram.ext import ExtBot

from bot.ratelimit import BotRateLimiter
from bot.request import AiohttpRequest
from bot.retry import RetryPolicy
from tests.support import BotApiStandIn
from tests.support.conversation import until

USER = 77


@pytest.fixture
async def limited(api: BotApiStandIn) -> AsyncIterator[ExtBot[int]]:
    """The bot's client stack: ExtBot + BotRateLimiter (limits lifted, retries on: a 1.5 s
    deadline, waits of 0.1-0.4 s) + aiohttp."""
    limiter = BotRateLimiter(overall_per_s=0, group_per_min=0, chat_per_s=0, chat_burst=1,
                             max_retries=2, retry=RetryPolicy(1.5, 0.1, 0.4))
    bot = ExtBot(api.token, base_url=api.base_url, base_file_url=api.base_file_url,
                 request=AiohttpRequest(4), rate_limiter=limiter)
    api.add_user(USER)
    async with bot:
        yield bot


async def test_a_call_waits_for_a_free_connection_and_times_out_without_the_token(
    api: BotApiStandIn,
) -> None:
    request = AiohttpRequest(connection_pool_size=1, read_timeout=5, connect_timeout=0.2,
                             pool_timeout=0.3)
    async with Bot(api.token, base_url=api.base_url, request=request) as bot:
        api.delay("getMe", 1.5)
        slow = asyncio.create_task(bot.get_me())  # holds the only connection for 1.5 s
        # until the stand-in holds it
        await until(lambda: any(c.method == "getMe" and not c.status for c in api.calls))
        started = time.monotonic()
        with pytest.raises(TimedOut) as waited:
            await bot.get_me()  # no connection free within pool + connect timeout
        assert 0.4 < time.monotonic() - started < 1.4
        assert api.token.split(":")[1] not in repr(waited.value)
        assert (await slow).username == api.bot_user["username"]
        assert (await bot.get_me(pool_timeout=5)).is_bot  # waits its turn when allowed to


async def test_a_read_timeout_is_timed_out(api: BotApiStandIn) -> None:
    async with Bot(api.token, base_url=api.base_url,
                   request=AiohttpRequest(read_timeout=0.3)) as bot:
        api.delay("getMe", 1.0)
        started = time.monotonic()
        with pytest.raises(TimedOut):
            await bot.get_me()
        assert time.monotonic() - started < 0.9


async def test_an_error_quoting_the_url_is_raised_without_the_token(api: BotApiStandIn) -> None:
    """A redirect loop (a misconfigured proxy): aiohttp's error names the URL, token included;
    the NetworkError the bot sees (and may log) shows <token> instead."""
    async with Bot(api.token, base_url=api.base_url, request=AiohttpRequest()) as bot:
        api.fail("getMe", status=302, times=100)
        with pytest.raises(NetworkError) as caught:
            await bot.get_me()
        message = str(caught.value)
        assert "TooManyRedirects" in message and "/bot<token>/getMe" in message
        assert api.token.split(":")[1] not in message


async def test_transient_failures_are_retried_until_the_deadline_permanent_ones_never(
        api: BotApiStandIn, limited: ExtBot[int]) -> None:
    api.fail("sendMessage", status=502, times=2)
    sent = await limited.send_message(USER, "hi")
    assert sent.text == "hi"
    assert [c.status for c in api.calls_to("sendMessage", ok_only=False)] == [502, 502, 200]
    api.fail("sendMessage", status=500, times=1000)  # longer than the 1.5 s deadline
    started = time.monotonic()
    with pytest.raises(NetworkError):
        await limited.send_message(USER, "hi")
    assert 1.4 < time.monotonic() - started < 2.5  # the deadline, not a count of tries
    failed = [c for c in api.calls_to("sendMessage", ok_only=False) if c.status == 500]
    assert len(failed) >= 4  # tried again and again, backing off (0.1 s, then up to 0.4 s)
    api.clear_faults()
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await limited.send_message(USER, "")  # a 400 won't improve: not retried
    api.fail("sendMessage", status=403)
    with pytest.raises(Forbidden, match="blocked"):
        await limited.send_message(USER, "hi")  # the user blocked the bot: not retried
    statuses = [c.status for c in api.calls_to("sendMessage", ok_only=False)]
    assert statuses[-2:] == [400, 403] and statuses.count(200) == 1


async def test_a_429_is_retried_after_retry_after(api: BotApiStandIn,
                                                  limited: ExtBot[int]) -> None:
    api.fail("sendMessage", status=429, retry_after=1)
    await limited.send_message(USER, "hi")
    first, second = api.calls_to("sendMessage", ok_only=False)
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 1.0
