"""Per-user lanes (bot/fairness.py): one user's photos are read one at a time, in order, while
other users go ahead; a burst gets one "one by one" note."""

from __future__ import annotations

import asyncio

import pytest

from bot.fairness import UserLanes


async def test_one_users_photos_go_one_at_a_time_in_order_while_others_go_ahead() -> None:
    lanes = UserLanes(per_user=1, notice_after=10)
    release = asyncio.Event()
    order: list[tuple[int, int]] = []

    async def photo(user: int, n: int) -> None:
        async with lanes.turn(user, on_queue=_never):
            order.append((user, n))
            if user == 1:
                await release.wait()  # the flooder's photo is being read

    flood = [asyncio.create_task(photo(1, n)) for n in range(3)]
    await asyncio.sleep(0)
    other = asyncio.create_task(photo(2, 0))
    await other  # not behind the flood
    assert order == [(1, 0), (2, 0)] and lanes.waiting(1) == 2
    release.set()
    await asyncio.gather(*flood)
    assert order == [(1, 0), (2, 0), (1, 1), (1, 2)]  # the flood in the order it came
    assert lanes.waiting(1) == 0 and lanes._lanes == {}  # burst over: the lane is forgotten


async def test_a_burst_is_told_once_with_the_number_waiting_and_a_new_burst_again() -> None:
    lanes = UserLanes(per_user=1, notice_after=2)
    notes: list[int] = []
    release = asyncio.Event()

    async def on_queue(waiting: int) -> None:
        notes.append(waiting)

    async def photo() -> None:
        async with lanes.turn(7, on_queue):
            await release.wait()

    burst = [asyncio.create_task(photo()) for _ in range(5)]
    while lanes.waiting(7) < 4:
        await asyncio.sleep(0)
    assert notes == [2]  # when the 2nd was waiting; not for the 3rd and 4th
    release.set()
    await asyncio.gather(*burst)
    release.clear()
    again = [asyncio.create_task(photo()) for _ in range(3)]
    while lanes.waiting(7) < 2:
        await asyncio.sleep(0)
    assert notes == [2, 2]
    release.set()
    await asyncio.gather(*again)


async def test_a_failed_or_cancelled_photo_frees_its_place() -> None:
    lanes = UserLanes(per_user=1, notice_after=10)
    with pytest.raises(RuntimeError):
        async with lanes.turn(3, _never):
            raise RuntimeError("download failed")
    assert lanes.waiting(3) == 0 and lanes._lanes == {}

    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with lanes.turn(3, _never):
            held.set()
            await release.wait()

    async def waiter() -> None:
        async with lanes.turn(3, _never):
            pass

    first = asyncio.create_task(holder())
    await held.wait()
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    assert lanes.waiting(3) == 1
    second.cancel()  # e.g. the bot shutting down
    with pytest.raises(asyncio.CancelledError):
        await second
    assert lanes.waiting(3) == 0
    release.set()
    await first
    async with lanes.turn(3, _never):  # the lane works as new
        assert lanes.waiting(3) == 0


async def test_more_than_one_photo_per_user_when_configured() -> None:
    lanes = UserLanes(per_user=2, notice_after=10)
    inside = 0
    most = 0
    release = asyncio.Event()

    async def photo() -> None:
        nonlocal inside, most
        async with lanes.turn(5, _never):
            inside += 1
            most = max(most, inside)
            await release.wait()
            inside -= 1

    tasks = [asyncio.create_task(photo()) for _ in range(4)]
    while lanes.waiting(5) < 2:
        await asyncio.sleep(0)
    assert inside == 2
    release.set()
    await asyncio.gather(*tasks)
    assert most == 2


async def _never(waiting: int) -> None:
    raise AssertionError("no note expected")
