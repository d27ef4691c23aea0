"""Webhook mode: setWebhook / deleteWebhook / getWebhookInfo kept like Telegram, and queued
updates POSTed to the bot instead of waiting for getUpdates.

While a webhook is set, getUpdates gets 409 (users.py asks ``_polling_refused``) and each
queued update is POSTed to ``webhook_target`` (the bot's local address, standing in for the
reverse proxy behind the registered https URL; the URL's path is kept) with the
``X-Telegram-Bot-Api-Secret-Token`` header. ``webhook_secret_override`` sends another secret,
or none with "". Every POST is recorded in ``webhook_deliveries``; an update the bot does not
take (no 2xx, or no answer) stays pending and is tried again every ``WEBHOOK_RETRY_S``, as at
Telegram. ``wait_delivery`` waits for a POST.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout

from tests.support.standin.core import ApiError, StandInCore, Upload, bot_method
from tests.support.standin.users import UsersMixin

WEBHOOK_RETRY_S = 1.0  # a refused webhook delivery is tried again after this long
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")  # Telegram's rule for secret_token


@dataclass
class WebhookDelivery:
    """One POST of an update to the bot's webhook; ``status`` 0: no HTTP answer."""

    update_id: int
    time: float
    wall_time: float
    status: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class WebhookMixin(UsersMixin, StandInCore):
    """``webhook`` (url, secret_token, allowed_updates, max_connections; None: polling),
    ``webhook_target``, ``webhook_secret_override``, ``webhook_deliveries``,
    ``wait_delivery``."""

    def _init_webhook(self) -> None:
        self.webhook: dict[str, Any] | None = None
        self.webhook_target: str | None = None
        self.webhook_secret_override: str | None = None
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._webhook_in_flight: set[int] = set()
        self._webhook_tasks: set[asyncio.Task[None]] = set()
        self._webhook_session: ClientSession | None = None

    async def stop(self) -> None:
        self.webhook = None
        if self._webhook_session is not None:
            session, self._webhook_session = self._webhook_session, None
            await session.close()
        await super().stop()

    # ----------------------------------------------------------------- test side
    async def wait_delivery(self, update_id: int | None = None, status: int | None = None,
                            after: float = 0.0, timeout: float = 10.0) -> WebhookDelivery:
        """The first webhook POST (of ``update_id``, answered ``status``, made after
        monotonic time ``after``); ``status`` 0: the bot could not be reached."""
        deadline = time.monotonic() + timeout
        while True:
            for delivery in list(self.webhook_deliveries):
                if (update_id is None or delivery.update_id == update_id) and (
                        status is None or delivery.status == status) and delivery.time >= after:
                    return delivery
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no such webhook delivery within {timeout}s: "
                                   f"{self.webhook_deliveries[-5:]}")
            await self._wait_change(remaining)

    # ----------------------------------------------------------------- Bot API
    @bot_method("setWebhook")  # `url` is required, but Telegram takes none or "" as "remove"
    async def _set_webhook(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        url = str(params.get("url") or "")
        if not url:
            return await self._delete_webhook(params, files)
        if not url.startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for "
                                "webhook")
        secret = params.get("secret_token")
        if secret is not None and not SECRET_RE.fullmatch(str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = {"url": url, "secret_token": secret,
                        "allowed_updates": params.get("allowed_updates"),
                        "max_connections": int(params.get("max_connections") or 40)}
        if params.get("drop_pending_updates"):
            with self._lock:
                self._updates.clear()
        self._updates_queued()
        return True

    @bot_method("deleteWebhook")
    async def _delete_webhook(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        self.webhook = None
        if params.get("drop_pending_updates"):
            with self._lock:
                self._updates.clear()
        return True

    @bot_method("getWebhookInfo")
    async def _get_webhook_info(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        info: dict[str, Any] = {"url": "", "has_custom_certificate": False,
                                "pending_update_count": self.pending_updates}
        if self.webhook is not None:
            info |= {"url": self.webhook["url"],
                     "max_connections": self.webhook["max_connections"]}
            if self.webhook["allowed_updates"] is not None:
                info["allowed_updates"] = self.webhook["allowed_updates"]
        failed = [d for d in self.webhook_deliveries if not d.ok]
        if failed:
            info |= {"last_error_date": int(failed[-1].wall_time),
                     "last_error_message": failed[-1].error}
        return info

    # ----------------------------------------------------------------- delivery
    def _polling_refused(self) -> str | None:
        if self.webhook is None:
            return None
        return ("Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first")

    def _updates_queued(self) -> None:
        """Start POSTing pending updates (callable from any thread) when a webhook is set."""
        loop = self._loop
        if self.webhook is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver_pending)

    def _deliver_pending(self) -> None:
        if self.webhook is None or self.webhook_target is None:
            return  # no bot to post to: the updates wait, as for an unreachable bot
        if self.is_down:  # Telegram itself is out: it delivers once it is back
            assert self._loop is not None
            self._loop.call_later(WEBHOOK_RETRY_S, self._deliver_pending)
            return
        with self._lock:
            todo = [u for u in self._updates if u["update_id"] not in self._webhook_in_flight]
            todo = todo[:max(0, self.webhook["max_connections"] - len(self._webhook_in_flight))]
            self._webhook_in_flight.update(u["update_id"] for u in todo)
        for update in todo:
            task = asyncio.ensure_future(self._deliver(update))
            self._webhook_tasks.add(task)
            task.add_done_callback(self._webhook_tasks.discard)

    async def _deliver(self, update: dict[str, Any]) -> None:
        """POST one update to the bot; on 2xx it is confirmed, else retried later."""
        webhook, target = self.webhook, self.webhook_target
        if webhook is None or target is None:  # deleted meanwhile
            with self._lock:
                self._webhook_in_flight.discard(update["update_id"])
            return
        path = re.sub(r"^https://[^/]+", "", webhook["url"]) or "/"
        secret = (webhook["secret_token"] if self.webhook_secret_override is None
                  else self.webhook_secret_override)
        headers = {SECRET_HEADER: secret} if secret else {}
        if self._webhook_session is None:
            self._webhook_session = ClientSession(timeout=ClientTimeout(total=60))
        delivery = WebhookDelivery(update["update_id"], time.monotonic(), time.time())
        try:
            async with self._webhook_session.post(target.rstrip("/") + path, json=update,
                                                  headers=headers) as response:
                delivery.status = response.status
                delivery.error = f"Wrong response from the webhook: {response.status}"
        except (ClientError, TimeoutError) as exc:
            delivery.error = f"Connection failed: {type(exc).__name__}"
        self.webhook_deliveries.append(delivery)
        with self._lock:
            self._webhook_in_flight.discard(update["update_id"])
            if delivery.ok:
                self._updates = [u for u in self._updates if u is not update]
        self._wake()
        if not delivery.ok and self._loop is not None:
            self._loop.call_later(WEBHOOK_RETRY_S, self._deliver_pending)
        else:
            self._deliver_pending()
