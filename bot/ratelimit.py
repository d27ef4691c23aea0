"""Outgoing request limits: PTB's AIORateLimiter plus what it leaves out.

AIORateLimiter enforces Telegram's per-group limit (20 msg/min) and retries after a 429.
Telegram also asks for at most ~30 messages/s overall and about 1 per second in any one chat,
and a 5xx answer or a dropped connection on a send deserves a short retry, not a lost reply.
Both rates are checked at the moment a message is sent: a message first waits for its chat's
turn (so it holds no overall slot meanwhile), then takes an overall slot and goes out only if
its chat's gap has passed; otherwise it waits again (rare: when the overall queue's wait let an
earlier message to that chat go out late).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import AIORateLimiter

from bot.config import Settings

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
MAX_CHAT_LIMITERS = 4096  # forget idle per-chat buckets beyond this many


class BotRateLimiter(AIORateLimiter):
    """AIORateLimiter + overall and per-chat pacing at send time + retries of failed sends."""

    def __init__(
        self,
        *,
        overall_per_s: float,
        group_per_min: float,
        chat_per_s: float,
        chat_burst: int,
        max_retries: int,
        send_retries: int,
    ) -> None:
        super().__init__(
            overall_max_rate=0,  # paced below, at the moment of sending
            group_max_rate=group_per_min,
            group_time_period=60 if group_per_min else 0,
            max_retries=max_retries,
        )
        # One message every 1/30 s rather than buckets of 30: a full bucket after a quiet
        # moment would let nearly 60 messages into one second.
        self._overall = AsyncLimiter(1, 1 / overall_per_s) if overall_per_s else None
        self._chat_burst = chat_burst
        self._chat_period = chat_burst / chat_per_s if chat_per_s else 0.0
        self._chat_limiters: dict[int, AsyncLimiter] = {}
        # with no bursts allowed, sends to one chat are also spaced as they go out
        self._chat_gap = self._chat_period if chat_burst == 1 else 0.0
        self._chat_next_send: dict[int, float] = {}
        self._send_retries = send_retries

    @classmethod
    def from_settings(cls, settings: Settings) -> BotRateLimiter:
        """Telegram's limits by default; RATE_LIMIT=0 lifts them (5xx/429 retries stay)."""
        on = settings.rate_limit
        return cls(
            overall_per_s=settings.rate_overall_per_s if on else 0,
            group_per_min=settings.rate_group_per_min if on else 0,
            chat_per_s=settings.rate_chat_per_s if on else 0,
            chat_burst=settings.rate_chat_burst,
            max_retries=settings.rate_max_retries,
            send_retries=settings.send_retries,
        )

    def _chat_limiter(self, chat_id: object) -> contextlib.AbstractAsyncContextManager:
        """A bucket for a private chat (groups are AIORateLimiter's job)."""
        if not self._chat_period or not isinstance(chat_id, int) or chat_id < 0:
            return contextlib.nullcontext()
        if len(self._chat_limiters) > MAX_CHAT_LIMITERS:
            for key, limiter in list(self._chat_limiters.items()):
                if limiter.has_capacity(limiter.max_rate):
                    del self._chat_limiters[key]
        limiter = self._chat_limiters.get(chat_id)
        if limiter is None:
            limiter = AsyncLimiter(self._chat_burst, self._chat_period)
            self._chat_limiters[chat_id] = limiter
        return limiter

    def _paced(self, chat_id: object, callback: Callable[..., Coroutine[Any, Any, Any]]
               ) -> Callable[..., Coroutine[Any, Any, Any]]:
        """`callback` run right after an overall slot, and no sooner than the chat's gap after
        its previous send."""
        if chat_id is None:  # not a message (getFile, answerCallbackQuery...): no limits
            return callback
        paced_chat = self._chat_gap and isinstance(chat_id, int) and chat_id > 0

        async def send(*args: Any, **kwargs: Any) -> Any:
            loop = asyncio.get_running_loop()
            while True:
                async with self._overall or contextlib.nullcontext():
                    now = loop.time()
                    wait = self._chat_next_send.get(chat_id, now) - now if paced_chat else 0.0
                    if wait <= 0:
                        if paced_chat:
                            self._forget_idle_chats(now)
                            self._chat_next_send[chat_id] = now + self._chat_gap
                        return await callback(*args, **kwargs)
                await asyncio.sleep(wait)

        return send

    def _forget_idle_chats(self, now: float) -> None:
        if len(self._chat_next_send) > MAX_CHAT_LIMITERS:
            self._chat_next_send = {k: t for k, t in self._chat_next_send.items() if t > now}

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
        for attempt in range(self._send_retries + 1):
            try:
                # The chat's turn, then AIORateLimiter (group limit, 429 retries), then the
                # overall slot and the chat's gap, checked together as the message goes out.
                async with self._chat_limiter(chat_id):
                    return await super().process_request(
                        self._paced(chat_id, callback), args, kwargs, endpoint, data,
                        rate_limit_args,
                    )
            except (BadRequest, TimedOut):
                raise  # a 400 won't improve; a timed-out send may have arrived (no doubles)
            except NetworkError as exc:  # 5xx or connection refused/reset
                if attempt == self._send_retries:
                    raise
                delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
                log.warning("%s failed (%s); retrying in %.1f s", endpoint, exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")
