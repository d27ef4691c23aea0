"""Outgoing request limits: PTB's AIORateLimiter plus what it leaves out.

AIORateLimiter enforces Telegram's per-group limit (20 msg/min) and retries after a 429.
Telegram also asks for at most ~30 messages/s overall and about 1 per second in any one chat.
Both rates hold at the moment a message is sent: one chat's messages go one at a time, each
waiting until its chat's window allows it (from when the previous ones were *sent*), then for
an overall slot, and it is sent right then. Every Bot API call but getUpdates passes through
here, so transient failures (5xx, dropped connections, timeouts) are retried here too, by the
bot's one retry policy (bot/retry.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.ext import AIORateLimiter

from bot.config import Settings
from bot.retry import RetryPolicy

MAX_CHATS = 4096  # forget idle chats' send times beyond this many
# Telegram counts messages as they arrive, and requests in flight arrive a few milliseconds
# apart from how they left: sends are spaced this much wider than the limits themselves.
SPACING_MARGIN = 1.02


class BotRateLimiter(AIORateLimiter):
    """AIORateLimiter + overall and per-chat pacing at send time + the retry policy."""

    def __init__(
        self,
        *,
        overall_per_s: float,
        group_per_min: float,
        chat_per_s: float,
        chat_burst: int,
        max_retries: int,
        retry: RetryPolicy,
    ) -> None:
        super().__init__(
            overall_max_rate=0,  # paced below, at the moment of sending
            group_max_rate=group_per_min,
            group_time_period=60 if group_per_min else 0,
            max_retries=max_retries,
        )
        # One message every 1/30 s rather than buckets of 30: a full bucket after a quiet
        # moment would let nearly 60 messages into one second.
        self._overall = (AsyncLimiter(1, SPACING_MARGIN / overall_per_s) if overall_per_s
                         else None)
        self._chat_burst = chat_burst  # messages a chat may get within one window
        self._chat_window = SPACING_MARGIN * chat_burst / chat_per_s if chat_per_s else 0.0
        self._chat_turns: dict[int, asyncio.Lock] = {}
        self._chat_sent: dict[int, deque[float]] = {}  # each chat's latest send times
        self._retry = retry

    @classmethod
    def from_settings(cls, settings: Settings, retry: RetryPolicy) -> BotRateLimiter:
        """Telegram's limits by default; RATE_LIMIT=0 lifts them (retries stay). `retry`: the
        bot's one policy (its stop ends every wait)."""
        on = settings.rate_limit
        return cls(
            overall_per_s=settings.rate_overall_per_s if on else 0,
            group_per_min=settings.rate_group_per_min if on else 0,
            chat_per_s=settings.rate_chat_per_s if on else 0,
            chat_burst=settings.rate_chat_burst,
            max_retries=settings.rate_max_retries,
            retry=retry,
        )

    def _paced(self, chat_id: object, callback: Callable[..., Coroutine[Any, Any, Any]]
               ) -> Callable[..., Coroutine[Any, Any, Any]]:
        """`callback`, sent right after an overall slot and, in a private chat, only when the
        chat's window since its earlier sends allows it."""
        if chat_id is None:  # not a message (getFile, answerCallbackQuery...): no limits
            return callback
        overall = self._overall or contextlib.nullcontext()
        if not self._chat_window or not isinstance(chat_id, int) or chat_id < 0:

            async def send(*args: Any, **kwargs: Any) -> Any:
                async with overall:
                    pass
                return await callback(*args, **kwargs)

            return send

        async def send_in_turn(*args: Any, **kwargs: Any) -> Any:
            loop = asyncio.get_running_loop()
            self._forget_idle_chats(loop.time())
            turn = self._chat_turns.setdefault(chat_id, asyncio.Lock())
            async with turn:  # one message of this chat at a time, in order
                sent = self._chat_sent.setdefault(chat_id, deque(maxlen=self._chat_burst))
                if len(sent) == self._chat_burst:
                    await asyncio.sleep(sent[0] + self._chat_window - loop.time())
                async with overall:
                    sent.append(loop.time())
            return await callback(*args, **kwargs)

        return send_in_turn

    def _forget_idle_chats(self, now: float) -> None:
        if len(self._chat_turns) <= MAX_CHATS:
            return
        for chat, turn in list(self._chat_turns.items()):
            sent = self._chat_sent.get(chat)
            if not turn.locked() and (not sent or sent[-1] + self._chat_window < now):
                del self._chat_turns[chat]
                self._chat_sent.pop(chat, None)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict | list[dict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict | list[dict]:
        chat_id = data.get("chat_id")
        with contextlib.suppress(TypeError, ValueError):
            chat_id = int(chat_id)  # type: ignore[arg-type]
        # AIORateLimiter (group limit, 429 waits) around the paced call, retried as a whole
        return await self._retry.call(
            lambda: super(BotRateLimiter, self).process_request(
                self._paced(chat_id, callback), args, kwargs, endpoint, data, rate_limit_args
            ),
            endpoint,
        )
