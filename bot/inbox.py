"""The durable inbox: every update is committed to SQLite before Telegram is told the bot has
it, and marked done only once it was answered — nothing acknowledged is lost (at least once).

Where updates enter. PTB's Updater puts each update it fetched into `Application.update_queue`
(`await update_queue.put(update)`) and confirms them to Telegram only with its *next*
getUpdates request (offset = last update_id + 1), which it sends after every put() returned.
PTB's webhook server likewise awaits `update_queue.put(update)` before it answers Telegram's
POST. So the queue's put() is the one place every update passes before Telegram learns it was
received, whichever way it came: `InboxQueue.put()` returns only once the update is committed.
(A handler in group -1 or an update processor runs later, when the update is taken from the
queue — possibly after the next getUpdates has confirmed it.) A webhook of one's own does the
same: `await application.update_queue.put(update)`, then answer Telegram.
`ApplicationBuilder.update_queue()` is PTB's documented way to give the Application this queue.

Memory. At most MAX_CONCURRENT_UPDATES updates are in memory, queued or being handled; the
rest wait in the inbox and are fed in as handled ones finish. While the Bot API is down the
backlog therefore grows on disk, not in memory.

Done. `InboxProcessor` (PTB's BaseUpdateProcessor) handles each update with its own retry
budget (bot/retry.py) and settles it afterwards: done — its reply went out, or it ended with a
final human answer or a permanent error (the user blocked the bot) — or, when a transient
failure outlasted RETRY_DEADLINE_S (the error handler marks it so), waiting again for
INBOX_RETRY_AFTER_S. A done row keeps only its update_id and time (to recognize the update if
Telegram delivers it again); the update itself is deleted then.

Start. Updates that were in memory when the process died wait again; those older than
INBOX_MAX_AGE are expired (logged), the others are handled again. An update_id the inbox
already has is not handled a second time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from bot.retry import RetryPolicy
from bot.storage import Storage

if TYPE_CHECKING:
    from telegram import Bot

log = logging.getLogger(__name__)

WAITING, IN_MEMORY, DONE, EXPIRED = range(4)


def sender_of(update: Update) -> int | None:
    """Whose update this is (for /forget): the user, or the chat for anonymous admins."""
    who = update.effective_user or update.effective_chat
    return who.id if who else None


class Inbox:
    """The inbox table's statements; each runs in the database thread (Storage.run)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def accept(self, update_id: int, user_id: int | None, payload: str, in_memory: bool) -> bool:
        """Store a new update (committed on return); False if the inbox already has it."""
        with self.storage.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO inbox (update_id, received_at, state, user_id, payload)"
                " VALUES (?, ?, ?, ?, ?)",
                (update_id, time.time(), IN_MEMORY if in_memory else WAITING, user_id, payload),
            )
            return cur.rowcount == 1

    def take(self, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` waiting updates, oldest first, now marked in memory."""
        with self.storage.transaction() as db:
            rows = db.execute(
                "SELECT update_id, payload FROM inbox WHERE state = ? AND not_before <= ?"
                " ORDER BY update_id LIMIT ?", (WAITING, time.time(), limit)).fetchall()
            db.executemany("UPDATE inbox SET state = ? WHERE update_id = ?",
                           [(IN_MEMORY, update_id) for update_id, _ in rows])
            return rows

    def finish(self, update_id: int) -> None:
        """Done: keep the update_id (Telegram may deliver it again), drop the update."""
        self.storage.execute(
            "UPDATE inbox SET state = ?, payload = NULL, user_id = NULL WHERE update_id = ?",
            (DONE, update_id))

    def park(self, update_id: int, retry_after_s: float) -> None:
        """Unfinished after its retries: wait in the inbox, try again after `retry_after_s`."""
        self.storage.execute(
            "UPDATE inbox SET state = ?, not_before = ?, attempts = attempts + 1"
            " WHERE update_id = ?", (WAITING, time.time() + retry_after_s, update_id))

    def recover(self) -> int:
        """At start: what was in memory when the process died waits again, and what was parked
        is tried at once (a start is a new chance); how many wait."""
        with self.storage.transaction() as db:
            db.execute("UPDATE inbox SET state = ?, not_before = 0 WHERE state IN (?, ?)",
                       (WAITING, WAITING, IN_MEMORY))
            (waiting,) = db.execute("SELECT COUNT(*) FROM inbox WHERE state = ?",
                                    (WAITING,)).fetchone()
            return int(waiting)

    def expire(self, max_age_s: float) -> tuple[int, int]:
        """Waiting updates older than `max_age_s` are given up (Telegram's own retention);
        done or expired rows that old are deleted. (expired, deleted)."""
        cutoff = time.time() - max_age_s
        with self.storage.transaction() as db:
            expired = db.execute(
                "UPDATE inbox SET state = ?, payload = NULL, user_id = NULL"
                " WHERE state = ? AND received_at < ?", (EXPIRED, WAITING, cutoff)).rowcount
            deleted = db.execute("DELETE FROM inbox WHERE state IN (?, ?) AND received_at < ?",
                                 (DONE, EXPIRED, cutoff)).rowcount
            return expired, deleted

    def waiting(self) -> int:
        """How many updates wait on disk, not yet in memory (the partial index counts them)."""
        ((count,),) = self.storage.execute("SELECT COUNT(*) FROM inbox WHERE state = ?",
                                           (WAITING,))
        return int(count)

    def states(self) -> dict[int, int]:
        """How many updates are in each state (WAITING, IN_MEMORY, DONE, EXPIRED)."""
        return dict(self.storage.execute("SELECT state, COUNT(*) FROM inbox GROUP BY state"))


class InboxQueue(asyncio.Queue):
    """The Application's update queue, backed by the inbox (see the module's docstring)."""

    def __init__(self, storage: Storage, window: int, retry_after_s: float,
                 max_age_s: float) -> None:
        super().__init__()
        self.storage = storage
        self.inbox = Inbox(storage)
        self.window = window  # most updates in memory at once
        self.retry_after_s = retry_after_s
        self.max_age_s = max_age_s
        self.bot: Bot | None = None  # set once the Application is built (to rebuild updates)
        self.running = lambda: True  # whether the Application still takes updates
        self.on_stop = lambda: None  # told when PTB's stop signal arrives
        self.held = 0  # updates in memory: in this queue or being handled
        self._waiting = False  # the inbox may hold updates ready to be fed in
        self._spills = 0  # updates sent straight to the inbox (memory full)
        self._feeding = False

    async def put(self, item: Any) -> None:
        """Commit an update to the inbox, then queue it in memory if there is room (anything
        else — PTB's stop signal — is queued as it is). Returns once the update is durable."""
        if not isinstance(item, Update):
            self.on_stop()  # the Application is stopping: updates in hand stop retrying
            await super().put(item)
            return
        to_memory = not self._waiting and self.held < self.window
        self.held += to_memory  # the slot is taken before the await, for concurrent puts
        try:
            new = await self.storage.run(self.inbox.accept, item.update_id, sender_of(item),
                                         item.to_json(), to_memory)
        except BaseException:
            self.held -= to_memory
            raise
        if not new:
            self.held -= to_memory
            log.info("Update %s is in the inbox already; not handled again", item.update_id)
        elif to_memory:
            self.put_nowait(item)
        else:
            self._waiting = True
            self._spills += 1

    async def start(self) -> None:
        """At start (post_init, before polling): updates the last process left unfinished
        wait again (or expire), and the first of them are queued."""
        waiting = await self.storage.run(self.inbox.recover)
        expired, _ = await self.storage.run(self.inbox.expire, self.max_age_s)
        if expired:
            log.warning("%d unfinished updates were older than INBOX_MAX_AGE and are given up",
                        expired)
        if waiting - expired:
            log.info("%d unfinished updates from before the start will be handled",
                     waiting - expired)
        self._waiting = waiting > expired
        await self.feed(starting=True)

    async def feed(self, starting: bool = False) -> None:
        """Move waiting updates from the inbox into memory while there is room. Only while
        the Application runs (or before it starts): once it stops, what PTB's stop signal
        left behind in the queue would never be taken."""
        if self._feeding:
            return
        self._feeding = True
        try:
            while (self._waiting and self.held < self.window
                   and (starting or self.running())):
                room = self.window - self.held
                spills = self._spills
                self.held += room
                try:
                    rows = await self.storage.run(self.inbox.take, room)
                finally:
                    self.held -= room
                if not (starting or self.running()):  # stopped meanwhile: for the next start
                    await self.storage.run(self.inbox.recover)
                    return
                for update_id, payload in rows:
                    update = Update.de_json(json.loads(payload), self.bot)
                    assert update is not None and update.update_id == update_id
                    self.held += 1
                    self.put_nowait(update)
                if len(rows) < room and spills == self._spills:
                    self._waiting = False  # none ready now (parked ones: the inbox job)
        finally:
            self._feeding = False

    async def settle(self, update_id: int, unfinished: bool) -> None:
        """An update was handled: done, or (a transient failure outlasted its retries) back to
        waiting in the inbox for a later try. Then feed in what waits."""
        try:
            if unfinished:
                await self.storage.run(self.inbox.park, update_id, self.retry_after_s)
                log.warning("Update %s is unfinished (the Bot API kept failing); trying again "
                            "in %.0f s", update_id, self.retry_after_s)
                self._waiting = True
            else:
                await self.storage.run(self.inbox.finish, update_id)
        finally:
            self.held -= 1
        await self.feed()

    def release(self, update_id: int) -> None:
        """Handling was cancelled (shutdown): the update stays in the inbox for the next start."""
        self.held -= 1
        log.info("Update %s was cancelled; it is handled again after the restart", update_id)

    async def job(self, _context: object) -> None:
        """JobQueue: feed in parked updates whose wait is over; expire what is too old."""
        expired, _ = await self.storage.run(self.inbox.expire, self.max_age_s)
        if expired:
            log.warning("%d unfinished updates were older than INBOX_MAX_AGE and are given up",
                        expired)
        self._waiting = True
        await self.feed()


class InboxProcessor(BaseUpdateProcessor):
    """Handles each update with its own retry budget, then settles it in the inbox."""

    def __init__(self, queue: InboxQueue, policy: RetryPolicy, max_concurrent_updates: int):
        super().__init__(max_concurrent_updates)
        self.queue = queue
        self.policy = policy

    async def do_process_update(self, update: object, coroutine: Any) -> None:
        if not isinstance(update, Update):
            await coroutine
            return
        with self.policy.for_update(update.update_id) as budget:
            try:
                await coroutine  # handlers and the error handler, in this task
            except asyncio.CancelledError:
                self.queue.release(update.update_id)
                raise
        await self.queue.settle(update.update_id, budget.unfinished)

    async def initialize(self) -> None:
        """Nothing to set up: the queue owns the inbox."""

    async def shutdown(self) -> None:
        """Nothing to free."""
