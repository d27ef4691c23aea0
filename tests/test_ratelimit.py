"""The bot's rate limiter on its own: both rates hold at the moment messages are sent.

The bot's end-to-end figures are in bench/bot_bench.py and bench/load_bench.py; here faster
rates than Telegram's keep the test short.
"""

from __future__ import annotations

import asyncio

import numpy as np

from bot.ratelimit import BotRateLimiter
from bot.retry import RetryPolicy
from tests.support import most_in_window

OVERALL_PER_S = 50
CHAT_PER_S = 10


async def send_all(limiter: BotRateLimiter,
                   chats: list[int | None]) -> list[tuple[int | None, float]]:
    """Every message at once through the limiter; (chat, time it went out) for each."""
    loop = asyncio.get_running_loop()
    sent: list[tuple[int | None, float]] = []

    async def send(chat: int | None) -> bool:
        sent.append((chat, loop.time()))
        await asyncio.sleep(0.01 * (chat or 0) % 0.05)  # uneven "network" times
        return True

    await asyncio.gather(*(
        limiter.process_request(send, (chat,), {}, "sendMessage",
                                {} if chat is None else {"chat_id": chat}, None)
        for chat in chats
    ))
    return sent


def limiter(on: bool = True, burst: int = 1) -> BotRateLimiter:
    return BotRateLimiter(overall_per_s=OVERALL_PER_S if on else 0, group_per_min=0,
                          chat_per_s=CHAT_PER_S if on else 0, chat_burst=burst, max_retries=0,
                          retry=RetryPolicy(deadline_s=0, base_s=0.1, max_s=0.1))


async def test_overall_and_per_chat_rates_hold_as_messages_go_out() -> None:
    # 3 busy chats (8 messages each) among 40 chats with one message each
    chats = [1, 2, 3] * 8 + list(range(100, 140))
    sent = await send_all(limiter(), chats)
    assert sorted(c for c, _ in sent) == sorted(chats)  # nothing lost or doubled
    times = [t for _, t in sent]
    assert most_in_window(times) <= OVERALL_PER_S
    assert min(np.diff(sorted(times))) >= 1 / OVERALL_PER_S - 0.002
    for chat in (1, 2, 3):
        gaps = np.diff(sorted(t for c, t in sent if c == chat))
        assert gaps.min() >= 1 / CHAT_PER_S - 0.002, gaps


async def test_lifted_limits_send_at_once_and_non_messages_are_not_paced() -> None:
    sent = await send_all(limiter(on=False), [7] * 30)
    assert len(sent) == 30 and max(t for _, t in sent) - min(t for _, t in sent) < 0.05
    sent = await send_all(limiter(), [None] * 30)  # getFile, answerCallbackQuery...: no chat_id
    assert len(sent) == 30 and max(t for _, t in sent) - min(t for _, t in sent) < 0.05


async def test_a_chat_burst_allows_that_many_per_window() -> None:
    times = [t for _, t in await send_all(limiter(burst=3), [5] * 9)]
    window = 3 / CHAT_PER_S
    assert most_in_window(times, window - 0.002) <= 3
    assert max(times) - min(times) >= 2 * window - 0.002  # 9 messages: three windows
