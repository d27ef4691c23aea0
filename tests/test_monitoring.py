"""/healthz and /metrics in polling mode (METRICS_PORT), in process: bot.app's Application
polls the Bot API stand-in in the test's event loop and serves both on its port. Read over HTTP
after real traffic: metric names and values, and health turning 503 when the database takes no
write or Telegram stops answering, and 200 again after. The image's HEALTHCHECK command
(`python -m bot.healthcheck`) runs as a process, as in the container.

Prometheus metrics live in the process's default registry, which other in-process tests' bots
count into too: counters are compared before and after."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import replies
from bot.app import BotApplication
from bot.i18n import translator
from bot.inbox import IN_MEMORY, WAITING
from tests.support import ROOT, BotApiStandIn
from tests.support.conversation import REPLY_S, reading, until
from tests.support.in_process import running_bot
from tests.support.pictures import blank_photo, digit_photo
from tests.support.web import free_port, healthz, scrape

EN = translator("en")

pytestmark = pytest.mark.timeout(120)

HEALTH_S = 20
API_MAX_AGE_S = 2


@pytest.fixture
async def monitored(api: BotApiStandIn, tmp_path: Path) -> AsyncIterator[tuple[BotApplication,
                                                                               int]]:
    """The bot with METRICS_PORT set, and that port."""
    port = free_port()
    async with running_bot(api, tmp_path / "data", metrics_port=port,
                           health_api_max_age_s=API_MAX_AGE_S) as app:
        yield app, port


async def wait_health(port: int, wanted: int) -> dict[str, Any]:
    """Ask /healthz until it answers `wanted` (each answer is a fresh check)."""
    deadline = time.monotonic() + HEALTH_S
    while True:
        status, body = await asyncio.to_thread(healthz, port)
        if status == wanted:
            return body
        assert time.monotonic() < deadline, f"/healthz stayed {status}: {body}"
        await asyncio.sleep(0.2)


async def test_metrics_count_photos_latency_errors_and_the_model(
    api: BotApiStandIn, monitored: tuple[BotApplication, int]
) -> None:
    _, port = monitored
    before = await asyncio.to_thread(scrape, port)
    user = 701
    for index in range(3):
        image, label = digit_photo(index)
        mid = api.send_photo(user, image)
        assert reading(await api.wait_reply(user, mid, timeout=REPLY_S)) == str(label)
    mid = api.send_photo(user, blank_photo())
    assert (await api.wait_reply(user, mid, timeout=REPLY_S)).text == replies.no_digit(EN)
    mid = api.send_document(user, b"\xff\xd8\xff\xe0" + bytes(300), "broken.jpg", "image/jpeg")
    await api.wait_reply(user, mid, timeout=REPLY_S)
    # Telegram faults the bot survives, each counted once by kind
    api.fail("sendMessage", status=502)
    api.fail("sendMessage", status=429, retry_after=1)
    mid = api.send_photo(user, blank_photo())
    assert (await api.wait_reply(user, mid, timeout=REPLY_S)).text == replies.no_digit(EN)

    after = await asyncio.to_thread(scrape, port)

    def grew(name: str) -> float:
        return after[name] - before[name]

    assert grew('digitbot_photos_read_total{status="ok"}') == 3
    assert grew('digitbot_photos_read_total{status="no_digit"}') == 2
    assert grew('digitbot_photos_read_total{status="error"}') == 1
    assert grew("digitbot_recognition_seconds_count") == 6
    assert 0 < grew("digitbot_recognition_seconds_sum") < 6 * 2.5
    assert grew('digitbot_recognition_seconds_bucket{le="+Inf"}') == 6
    assert grew('digitbot_bot_api_errors_total{kind="5xx"}') == 1
    assert grew('digitbot_bot_api_errors_total{kind="429"}') == 1
    assert grew('digitbot_bot_api_errors_total{kind="network"}') == 0
    assert grew('digitbot_retrain_runs_total{outcome="failed"}') == 0
    assert after["digitbot_model_version"] == 1
    assert after["digitbot_updates_waiting"] == 0
    assert after["digitbot_inbox_waiting"] == 0
    assert 0 <= after["digitbot_updates_in_flight"] <= 1  # at most this scrape's poll
    assert abs(after["digitbot_bot_api_last_success_timestamp_seconds"] - time.time()) < 30
    assert after["process_resident_memory_bytes"] > 50e6  # prometheus-client's own


async def test_the_inbox_gauge_counts_the_updates_waiting_on_disk(
    api: BotApiStandIn, tmp_path: Path
) -> None:
    """While sends fail, MAX_CONCURRENT_UPDATES updates are in memory and the rest wait in the
    inbox on disk: digitbot_updates_waiting (the in-memory queue) can't see those,
    digitbot_inbox_waiting counts them."""
    port = free_port()
    async with running_bot(api, tmp_path / "data", metrics_port=port, rate_limit=False,
                           max_concurrent_updates=2, retry_base_s=0.05, retry_max_s=0.2) as app:
        inbox = app.bot_data.services.inbox.inbox
        api.fail("sendMessage", status=502, times=10**6)  # getUpdates works, sends don't
        asked = {user: api.send_command(user, "help") for user in range(720, 726)}
        # all six on disk: two in memory, four waiting
        await until(lambda: inbox.states() == {IN_MEMORY: 2, WAITING: 4})
        during = await asyncio.to_thread(scrape, port)
        assert during["digitbot_inbox_waiting"] == 4
        assert during["digitbot_updates_in_flight"] == 2
        assert during["digitbot_updates_waiting"] == 0  # nothing queued in memory
        api.clear_faults()
        for user, mid in asked.items():
            reply = await api.wait_reply(user, mid, timeout=REPLY_S)
            assert reply.text == replies.help_text(EN)
        assert (await asyncio.to_thread(scrape, port))["digitbot_inbox_waiting"] == 0


async def test_healthz_reports_each_part_and_fails_when_one_fails(
    api: BotApiStandIn, monitored: tuple[BotApplication, int]
) -> None:
    app, port = monitored
    body = await wait_health(port, 200)
    assert body["status"] == "ok" and body["mode"] == "polling" and 0 <= body["uptime_s"] < 60
    assert body["model"] == {"loaded": True, "version": 1}
    assert body["database"] == {"writable": True}
    assert body["bot_api"]["ok"] and body["bot_api"]["last_success_age_s"] <= API_MAX_AGE_S
    assert (await asyncio.to_thread(check_cli, port)).returncode == 0

    # another connection holds the database's write lock: no write within 2 s -> 503
    db_path = app.bot_data.services.settings.db_path
    with sqlite3.connect(db_path, isolation_level=None) as db:
        db.execute("BEGIN EXCLUSIVE")
        status, body = await asyncio.to_thread(healthz, port)
        db.execute("ROLLBACK")
    assert status == 503 and body["status"] == "failing"
    assert body["database"]["writable"] is False and "locked" in body["database"]["error"]
    await wait_health(port, 200)

    # Telegram unreachable for longer than HEALTH_API_MAX_AGE_S -> 503, and back
    await api.go_down()
    try:
        body = await wait_health(port, 503)
        assert body["bot_api"]["ok"] is False and body["database"]["writable"] is True
        done = await asyncio.to_thread(check_cli, port)
        assert done.returncode == 1 and '"failing"' in done.stderr
    finally:
        await api.come_back()
    await wait_health(port, 200)


def check_cli(port: int) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command against this bot."""
    env = {**os.environ, "METRICS_PORT": str(port)}
    env.pop("WEBHOOK_URL", None)
    return subprocess.run([sys.executable, "-m", "bot.healthcheck"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)


def test_healthcheck_cli_without_an_endpoint_says_what_to_set() -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("METRICS_PORT", "WEBHOOK_URL", "WEBHOOK_PORT")}
    done = subprocess.run([sys.executable, "-m", "bot.healthcheck"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "set METRICS_PORT" in done.stderr
    port = free_port()  # nothing listens there
    done = subprocess.run([sys.executable, "-m", "bot.healthcheck"], cwd=ROOT,
                          env={**env, "METRICS_PORT": str(port)}, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1 and f"127.0.0.1:{port}/healthz" in done.stderr
