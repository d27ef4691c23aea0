"""Talking to the bot through the stand-in: `ask` / `press` from sync code (the stand-in in its
thread, e.g. with a bot process), `ask_async` / `press_async` from async tests on the
stand-in's own loop; `reading` and `buttons` read a reply; `until` waits for the bot's own
state (a row it writes after a reply is sent)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

from tests.support.standin import BotApiStandIn, Call

REPLY_S = 20  # generous: a loaded 2-core machine; waits end as soon as the reply arrives


def ask(api: BotApiStandIn, user: int, send: Callable[[], int], timeout: float = REPLY_S) -> Call:
    """Queue a user message (``send`` returns its id) and wait for the bot's next message to
    that chat about it: a reply to it, or a message that replies to nothing."""
    return api.run(ask_async(api, user, send, timeout))


async def ask_async(api: BotApiStandIn, user: int, send: Callable[[], int],
                    timeout: float = REPLY_S) -> Call:
    """`ask` on the stand-in's own event loop."""
    sent_at = time.monotonic()
    mid = send()
    return await api.wait_message(
        user, lambda c: c.reply_to in (None, mid), timeout=timeout, after=sent_at)


def reading(call: Call) -> str | None:
    """The first number of a reply: the bot's reading."""
    match = re.search(r"\d+", call.text)
    return match.group(0) if match else None


def buttons(call: Call) -> list[str]:
    """callback_data of every inline button of a delivered message."""
    markup = call.params.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row
            if "callback_data" in b]


def press(api: BotApiStandIn, user: int, message_id: int, data: str, **kw: int) -> str:
    """Press a button; the text the bot answered the callback query with."""
    return api.run(press_async(api, user, message_id, data, **kw))


async def press_async(api: BotApiStandIn, user: int, message_id: int, data: str,
                      **kw: int) -> str:
    """`press` on the stand-in's own event loop."""
    query = api.press(user, message_id, data, **kw)
    answer = await api.wait_callback_answer(query, timeout=REPLY_S)
    return str(answer.params.get("text", ""))


async def until(condition: Callable[[], bool], timeout: float = REPLY_S) -> None:
    """Wait for `condition()` (the bot works in this same event loop meanwhile)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)
