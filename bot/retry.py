"""Outage-proof Bot API calls: one retry policy for every call the bot makes while it handles
an update (getFile, the download, every send), and for its other calls too.

A transient failure — a 5xx answer, a refused or dropped connection, a timeout, a 429 that
outlasted AIORateLimiter's own waits — is retried with exponential backoff and full jitter
(spread, so a thousand stuck replies don't all come back in the same instant) until the
update's deadline: RETRY_DEADLINE_S from the update's first failure, shared by all its calls.
Only the update's own task waits; other users' updates go on. A permanent failure — 400 (chat
not found, bad parameters), 403 (the user blocked the bot), 401/404 (token) — is raised at once.

A send that timed out may have reached Telegram; retrying it may repeat a reply, never lose
one (at least once; the Bot API has no idempotency keys).

Once the bot is stopping (`RetryPolicy.stop()`, when PTB's Application stops) no call waits
for another try: an update whose call fails then is unfinished and waits in the inbox for the
next start, so SIGTERM during an outage ends the process in moments, not after the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.warnings import PTBDeprecationWarning

from bot.config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class UpdateBudget:
    """Retry state shared by the calls of one update (set by the inbox's update processor)."""

    update_id: int | None = None
    deadline: float | None = None  # loop time; set at the update's first transient failure
    unfinished: bool = False  # it ended with a transient failure: try it again later


CURRENT: ContextVar[UpdateBudget | None] = ContextVar("update_budget", default=None)


@contextlib.contextmanager
def single_try() -> Iterator[None]:
    """Calls made inside get one try each: for a probe whose failure is its answer (the health
    check's getMe), or a courtesy not worth holding up the start for (the command menu)."""
    token = CURRENT.set(UpdateBudget(deadline=-math.inf))  # a deadline long past
    try:
        yield
    finally:
        CURRENT.reset(token)


def retry_after_s(exc: RetryAfter) -> float:
    """A 429's wait in seconds (PTB 22 warns that the attribute's type will change)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: 5xx, connection errors and timeouts (NetworkError but not its subclass
    BadRequest), and 429s (RetryAfter)."""
    if isinstance(exc, RetryAfter):
        return True
    return isinstance(exc, NetworkError) and not isinstance(exc, BadRequest)


@dataclass(frozen=True)
class RetryPolicy:
    deadline_s: float  # per update, from its first transient failure
    base_s: float  # first wait; doubles with each failure
    max_s: float  # longest wait between two tries
    # set once the bot is stopping: waits end, failed calls give up (their update waits)
    stopping: asyncio.Event = field(default_factory=asyncio.Event, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.retry_deadline_s, settings.retry_base_s, settings.retry_max_s)

    @contextlib.contextmanager
    def for_update(self, update_id: int) -> Iterator[UpdateBudget]:
        """The calls made inside (in this task and tasks it starts) share one deadline."""
        budget = UpdateBudget(update_id)
        token = CURRENT.set(budget)
        try:
            yield budget
        finally:
            CURRENT.reset(token)

    def stop(self) -> None:
        """The bot is stopping: calls now failing give up instead of waiting to retry."""
        self.stopping.set()

    def wait(self, attempt: int, exc: BaseException) -> float:
        """Full jitter over an exponentially growing window; never before a 429's retry_after."""
        window = min(self.max_s, self.base_s * 2**attempt)
        delay = random.uniform(self.base_s, max(self.base_s, window))
        if isinstance(exc, RetryAfter):
            delay = max(delay, retry_after_s(exc))
        return delay

    async def call(self, attempt_once: Callable[[], Awaitable[T]], what: str) -> T:
        """`attempt_once()` until it succeeds, fails permanently, or the deadline passes."""
        loop = asyncio.get_running_loop()
        budget = CURRENT.get() or UpdateBudget()  # outside an update: a deadline of its own
        attempt = 0
        while True:
            try:
                return await attempt_once()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                now = loop.time()
                if budget.deadline is None:
                    budget.deadline = now + self.deadline_s
                delay = min(self.wait(attempt, exc), budget.deadline - now)
                if self.stopping.is_set():
                    log.warning("%s failed (%s); the bot is stopping, so no more tries",
                                what, exc)
                    raise
                if delay <= 0:
                    log.warning("%s failed (%s); giving up after %d tries (deadline %g s)",
                                what, exc, attempt + 1, self.deadline_s)
                    raise
                # the first failure of a call is worth a warning; the rest of a spell is noise
                log.log(logging.WARNING if attempt == 0 else logging.DEBUG,
                        "%s failed (%s); retrying in %.1f s", what, exc, delay)
                attempt += 1
            with contextlib.suppress(TimeoutError):  # the wait ends early when the bot stops
                await asyncio.wait_for(self.stopping.wait(), delay)
