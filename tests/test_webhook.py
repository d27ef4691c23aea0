"""Webhook mode: the real bot (`python -m bot` with WEBHOOK_URL) takes the updates the Bot API
stand-in POSTs to it over HTTP, as Telegram does through a reverse proxy.

Checked: setWebhook carries the URL, the secret and allowed_updates; posted photos and commands
are answered; a missing or wrong secret gets 403 and is not processed (Telegram then retries,
and the update is answered once the secret is right); /healthz and /metrics share the
webhook's port; the secret appears in no log; restarted in polling mode the bot deletes the
webhook and gets the updates that waited meanwhile.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import replies
from bot.i18n import translator
from tests.support import BotApiStandIn, BotProcess
from tests.support.conversation import REPLY_S, ask, reading
from tests.support.pictures import blank_photo, digit_photo
from tests.support.web import free_port, healthz, http, scrape

EN = translator("en")

pytestmark = pytest.mark.timeout(180)

PUBLIC_URL = "https://bot.example.test/telegram/updates"  # what a reverse proxy would serve
SECRET = "Webhook-Secret_4242-abcdefghijklmnop"


class WebhookBot(BotProcess):
    """The bot in webhook mode: it is up once it has registered its webhook."""

    def __init__(self, api: BotApiStandIn, data_dir: Path, port: int, **env: str) -> None:
        super().__init__(api, data_dir, WEBHOOK_URL=PUBLIC_URL, WEBHOOK_SECRET=SECRET,
                         WEBHOOK_LISTEN="127.0.0.1", WEBHOOK_PORT=str(port), **env)
        self.port = port

    async def wait_ready(self, timeout: float) -> object:
        return await self.api.wait_for(
            lambda c: c.method == "setWebhook" and c.time >= self.started_at, timeout)


def test_webhook_mode_end_to_end_then_back_to_polling(tmp_path: Path) -> None:
    port = free_port()
    with BotApiStandIn().in_thread() as api:
        api.webhook_target = f"http://127.0.0.1:{port}"  # the reverse proxy's upstream
        bot = WebhookBot(api, tmp_path / "data", port).start()
        try:
            check_registration(api)
            check_answers(api)
            check_refusals(api, bot)
            check_health_and_metrics(bot)
        finally:
            assert bot.stop() == 0
        log = bot.log()
        assert SECRET not in log and api.token.split(":")[1] not in log
        assert "Refused a webhook request" in log
        check_back_to_polling(api, tmp_path / "data")


def check_registration(api: BotApiStandIn) -> None:
    (registered,) = api.calls_to("setWebhook")
    assert registered.params["url"] == PUBLIC_URL
    assert registered.params["secret_token"] == SECRET
    assert {"message", "callback_query"} <= set(registered.params["allowed_updates"])
    assert api.webhook is not None and api.webhook["url"] == PUBLIC_URL
    assert not api.calls_to("getUpdates", ok_only=False)  # no polling at all


def check_answers(api: BotApiStandIn) -> None:
    user = 601
    assert ask(api, user, lambda: api.send_command(user, "help")).text == replies.help_text(EN)
    for index in range(2):
        image, label = digit_photo(index)
        mid = api.send_photo(user, image)
        assert reading(api.run(api.wait_reply(user, mid, timeout=REPLY_S))) == str(label)
    mid = api.send_photo(user, blank_photo())
    assert api.run(api.wait_reply(user, mid, timeout=REPLY_S)).text == replies.no_digit(EN)
    deliveries = api.webhook_deliveries
    assert len(deliveries) == 4 and all(d.status == 200 for d in deliveries)
    assert api.pending_updates == 0


def check_refusals(api: BotApiStandIn, bot: WebhookBot) -> None:
    """No secret, then a wrong one: 403, nothing processed; with the right one it goes in."""
    user = 602
    for wrong in ("", "not-the-secret"):
        api.webhook_secret_override = wrong
        image, label = digit_photo(2)
        sent = time.monotonic()
        mid = api.send_photo(user, image)
        refused = api.run(api.wait_delivery(status=403, after=sent, timeout=REPLY_S))
        assert api.pending_updates == 1  # Telegram keeps it and tries again
        assert not [c for c in api.messages_to(user) if c.time >= sent], "refused, yet processed"
        api.webhook_secret_override = None
        reply = api.run(api.wait_reply(user, mid, timeout=REPLY_S))
        assert reading(reply) == str(label)
        api.run(api.wait_delivery(refused.update_id, status=200, timeout=REPLY_S))
    # the right secret with a body that is no update: 400, and the bot goes on
    status, _ = http("POST", f"http://127.0.0.1:{bot.port}/telegram/updates", b"not json",
                     {"X-Telegram-Bot-Api-Secret-Token": SECRET,
                      "Content-Type": "application/json"})
    assert status == 400
    status, _ = http("POST", f"http://127.0.0.1:{bot.port}/telegram/updates", b"{}",
                     {"X-Telegram-Bot-Api-Secret-Token": "x" + SECRET})
    assert status == 403
    assert bot.alive()


def check_health_and_metrics(bot: WebhookBot) -> None:
    status, health = healthz(bot.port)
    assert status == 200 and health["status"] == "ok" and health["mode"] == "webhook"
    assert health["model"] == {"loaded": True, "version": 1}
    assert health["database"] == {"writable": True}
    assert health["bot_api"]["ok"] and health["bot_api"]["last_success_age_s"] < 120
    samples = scrape(bot.port)
    assert samples['digitbot_photos_read_total{status="ok"}'] == 4  # 2 + 2 after refusals
    assert samples['digitbot_photos_read_total{status="no_digit"}'] == 1
    assert samples["digitbot_webhook_refused_total"] == 3
    assert samples["digitbot_model_version"] == 1
    assert samples["digitbot_updates_waiting"] == 0


def check_back_to_polling(api: BotApiStandIn, data_dir: Path) -> None:
    """Restarted without WEBHOOK_URL: deleteWebhook, then getUpdates, and an update that
    waited at Telegram while no bot ran is answered."""
    user = 603
    image, label = digit_photo(3)
    started = time.monotonic()
    mid = api.send_photo(user, image)  # the webhook is still set: delivery fails, it waits
    api.run(api.wait_delivery(status=0, after=started, timeout=REPLY_S))
    polling = BotProcess(api, data_dir).start()
    try:
        deleted = api.calls_to("deleteWebhook")
        assert deleted and deleted[-1].time >= started
        assert api.webhook is None
        assert reading(api.run(api.wait_reply(user, mid, timeout=REPLY_S))) == str(label)
    finally:
        assert polling.stop() == 0


@pytest.mark.parametrize(("env", "expected"), [
    ({"WEBHOOK_URL": PUBLIC_URL}, "WEBHOOK_SECRET is not set"),
    ({"WEBHOOK_URL": "http://bot.example.test/hook", "WEBHOOK_SECRET": SECRET},
     "Invalid setting WEBHOOK_URL"),
    ({"WEBHOOK_URL": PUBLIC_URL, "WEBHOOK_SECRET": "has spaces in it"},
     "Invalid setting WEBHOOK_SECRET"),
])
def test_webhook_settings_are_checked_with_one_clear_line(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    full = {**os.environ, "BOT_TOKEN": "123:SECRET", "DATA_DIR": str(tmp_path), **env}
    done = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=full,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith(expected), done.stderr
    assert "Traceback" not in done.stderr and "spaces" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
