"""Per-user lanes: each user has at most N photos being read at once, so one user sending a
hundred photos waits for their own turn instead of filling the recognition threads for all."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass


@dataclass
class _Lane:
    semaphore: asyncio.Semaphore
    pending: int = 0  # photos of this user being read or waiting
    told: bool = False  # the "one by one" note was sent for this burst


class UserLanes:
    """`async with lanes.turn(user_id, on_queue):` waits for the user's turn (FIFO)."""

    def __init__(self, per_user: int, notice_after: int) -> None:
        self.per_user = per_user
        self.notice_after = notice_after
        self._lanes: dict[int, _Lane] = {}

    def waiting(self, user_id: int) -> int:
        lane = self._lanes.get(user_id)
        return max(0, lane.pending - self.per_user) if lane else 0

    @contextlib.asynccontextmanager
    async def turn(
        self, user_id: int, on_queue: Callable[[int], Awaitable[None]]
    ) -> AsyncIterator[None]:
        """Hold one of the user's slots; `on_queue(waiting)` runs once per burst of photos."""
        lane = self._lanes.get(user_id)
        if lane is None:
            lane = self._lanes[user_id] = _Lane(asyncio.Semaphore(self.per_user))
        lane.pending += 1
        try:
            waiting = lane.pending - self.per_user
            if waiting >= self.notice_after and not lane.told:
                lane.told = True
                await on_queue(waiting)
            async with lane.semaphore:
                yield
        finally:
            lane.pending -= 1
            if lane.pending == 0:  # burst over: forget the lane (and the note)
                del self._lanes[user_id]
