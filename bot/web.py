"""The bot's HTTP server (aiohttp): Telegram's webhook, `GET /healthz` and `GET /metrics`.

Webhook mode follows python-telegram-bot's documented pattern for a custom webhook server
(its "customwebhookbot" example): our own web application puts each update into
`application.update_queue`, and `run_webhook` below runs the Application around it; that is
how the health and metrics routes share the webhook's port. In polling mode the same server,
without the webhook route, listens on METRICS_PORT. Either way bot/app.py's post_init starts
it and post_stop stops it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import time
from collections.abc import Callable
from http import HTTPStatus

import numpy as np
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application

from bot import metrics, retry
from bot.config import Settings
from bot.inbox import InboxQueue
from bot.models import ServingModel
from bot.storage import Storage
from model.recognize import CLASSES

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SET_WEBHOOK_TRIES = 4  # at start, 1 s apart: Telegram (or the network) may blink
HEALTH_PROBE_TIMEOUT_S = 5
BLANK = np.zeros((1, 28, 28), np.uint8)


class WebServer:
    """/healthz and /metrics, plus the webhook route when `webhook` is set."""

    def __init__(
        self,
        application: Application,
        settings: Settings,
        storage: Storage,
        inbox: InboxQueue,
        serving: Callable[[], ServingModel],
        *,
        webhook: bool,
    ) -> None:
        self.application = application
        self.settings = settings
        self.storage = storage
        self.inbox = inbox
        self.serving = serving
        self.webhook_mode = webhook
        self.started = time.monotonic()
        self._runner: web.AppRunner | None = None
        if webhook:
            self.host, self.port = settings.webhook_listen, settings.webhook_port
            assert settings.webhook_secret is not None, "load_settings() demands one"
            self._secret = settings.webhook_secret.get_secret_value().encode()
        else:
            self.host, self.port = settings.metrics_listen, settings.metrics_port or 0
        self.app = web.Application()
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/metrics", self.metrics)
        self._prometheus = make_aiohttp_handler()
        if webhook:
            self.app.router.add_post(settings.webhook_path, self.webhook)
        metrics.watch(application, lambda: serving().version)

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("Serving /healthz and /metrics on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def webhook(self, request: web.Request) -> web.Response:
        """An update from Telegram: checked for the secret, then queued like a polled one —
        committed to the inbox (InboxQueue.put) before Telegram gets its 200."""
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            metrics.WEBHOOK_REFUSED.inc()
            log.warning("Refused a webhook request from %s: %s %s header", request.remote,
                        "a wrong" if given else "no", SECRET_HEADER)
            return web.Response(status=HTTPStatus.FORBIDDEN)
        try:
            update = Update.de_json(await request.json(), self.application.bot)
        except (ValueError, TypeError, KeyError) as exc:  # not JSON, or not an Update
            log.warning("Refused a webhook request that is not an update: %s", exc)
            return web.Response(status=HTTPStatus.BAD_REQUEST)
        await self.application.update_queue.put(update)
        return web.Response()

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        """Prometheus's scrape: the inbox's backlog is counted first, in the database thread
        (prometheus-client reads gauges on the event loop)."""
        inbox = self.inbox.inbox
        metrics.INBOX_WAITING.set(await self.storage.run(inbox.waiting))
        return await self._prometheus(request)

    async def healthz(self, request: web.Request) -> web.Response:
        """200 when the model answers, the database takes a write and Telegram answers."""
        model = self.serving()
        try:  # one blank image through the serving interpreter
            scores = await asyncio.to_thread(model.recognizer.classify, BLANK)
            loaded = scores.shape == (1, CLASSES) and bool(np.isfinite(scores).all())
        except Exception:
            log.exception("Health check: the serving model failed on a blank image")
            loaded = False
        try:
            await asyncio.to_thread(self.storage.check_writable)
            database: dict[str, bool | str] = {"writable": True}
        except Exception as exc:  # any failure to write is the answer here
            database = {"writable": False, "error": str(exc)}
        age = metrics.api_success_age()
        if age is None or age > self.settings.health_api_max_age_s:
            # quiet (a webhook bot waits for Telegram) or failing: ask Telegram once
            try:
                with retry.single_try():  # a probe: its failure is the answer, not retried
                    await self.application.bot.get_me(read_timeout=HEALTH_PROBE_TIMEOUT_S)
            except TelegramError as exc:
                log.warning("Health check: the Bot API did not answer getMe: %s", exc)
            age = metrics.api_success_age()
        api_ok = age is not None and age <= self.settings.health_api_max_age_s
        healthy = loaded and database["writable"] and api_ok
        body = {
            "status": "ok" if healthy else "failing",
            "uptime_s": round(time.monotonic() - self.started, 1),
            "mode": "webhook" if self.webhook_mode else "polling",
            "model": {"loaded": loaded, "version": model.version},
            "database": database,
            "bot_api": {
                "last_success_age_s": None if age is None else round(age, 1),
                "ok": api_ok,
            },
        }
        status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
        return web.json_response(body, status=status)


async def set_webhook(application: Application, settings: Settings) -> None:
    """Register WEBHOOK_URL with its secret; a few tries, then the error goes up."""
    assert settings.webhook_url is not None and settings.webhook_secret is not None
    for attempt in range(1, SET_WEBHOOK_TRIES + 1):
        try:
            await application.bot.set_webhook(
                settings.webhook_url,
                secret_token=settings.webhook_secret.get_secret_value(),
                allowed_updates=Update.ALL_TYPES,
            )
            return
        except TelegramError as exc:
            if attempt == SET_WEBHOOK_TRIES:
                raise
            log.warning("setWebhook failed (%s); trying again in 1 s", exc)
            await asyncio.sleep(1)


async def run_webhook(application: Application, server: WebServer, started: float) -> None:
    """Run the Application on `server`'s webhook until SIGINT/SIGTERM, with the same
    post_init / post_stop / post_shutdown hooks and order as `run_polling`."""
    settings = server.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await application.initialize()
        if application.post_init:
            await application.post_init(application)  # it starts `server` (bot/app.py)
        await set_webhook(application, settings)
        await application.start()
        log.info("Ready in %.2f s; webhook %s, listening on %s:%s%s",
                 time.monotonic() - started, settings.webhook_url, server.host, server.port,
                 settings.webhook_path)
        await stop.wait()
    finally:
        await server.stop()  # first: no update may arrive that nobody would handle
        if application.running:
            await application.stop()
            if application.post_stop:
                await application.post_stop(application)
        await application.shutdown()
        if application.post_shutdown:
            await application.post_shutdown(application)
