"""/healthz and /metrics of the real bot in polling mode (METRICS_PORT), read over HTTP after
real traffic through the Bot API stand-in: metric names and values, and health turning 503
when the database takes no write or Telegram stops answering, and 200 again after."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT, BotApiStandIn, BotProcess
from tests.support.conversation import reading
from tests.support.pictures import blank_photo, digit_photo
from tests.support.web import free_port, http, scrape

pytestmark = pytest.mark.timeout(180)

REPLY_S = 20
HEALTH_S = 20
API_MAX_AGE_S = 2


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BotApiStandIn,
                                                                            BotProcess, int]]:
    port = free_port()
    with BotApiStandIn().in_thread() as api:
        bot = BotProcess(api, tmp_path_factory.mktemp("monitored") / "data",
                         METRICS_PORT=str(port), HEALTH_API_MAX_AGE_S=str(API_MAX_AGE_S)).start()
        try:
            yield api, bot, port
        finally:
            bot.stop_and_check_log()


def healthz(port: int) -> tuple[int, dict]:
    status, body = http("GET", f"http://127.0.0.1:{port}/healthz")
    return status, json.loads(body)


def wait_health(port: int, wanted: int) -> dict:
    """Ask /healthz until it answers `wanted` (each answer is a fresh check)."""
    deadline = time.monotonic() + HEALTH_S
    while True:
        status, body = healthz(port)
        if status == wanted:
            return body
        assert time.monotonic() < deadline, f"/healthz stayed {status}: {body}"
        time.sleep(0.2)


def test_metrics_count_photos_latency_errors_and_the_model(monitored) -> None:
    api, bot, port = monitored
    before = scrape(port)
    assert before['digitbot_photos_read_total{status="ok"}'] == 0
    assert before['digitbot_retrain_runs_total{outcome="promoted"}'] == 0
    user = 701
    for index in range(3):
        image, label = digit_photo(index)
        mid = api.send_photo(user, image)
        assert reading(api.run(api.wait_reply(user, mid, timeout=REPLY_S))) == str(label)
    mid = api.send_photo(user, blank_photo())
    api.run(api.wait_reply(user, mid, timeout=REPLY_S))
    mid = api.send_document(user, b"\xff\xd8\xff\xe0" + bytes(300), "broken.jpg", "image/jpeg")
    api.run(api.wait_reply(user, mid, timeout=REPLY_S))
    # Telegram faults the bot survives, each counted once by kind
    api.fail("sendMessage", status=502)
    api.fail("sendMessage", status=429, retry_after=1)
    mid = api.send_photo(user, blank_photo())
    api.run(api.wait_reply(user, mid, timeout=REPLY_S))

    samples = scrape(port)
    assert samples['digitbot_photos_read_total{status="ok"}'] == 3
    assert samples['digitbot_photos_read_total{status="no_digit"}'] == 2
    assert samples['digitbot_photos_read_total{status="error"}'] == 1
    assert samples["digitbot_recognition_seconds_count"] == 6
    assert 0 < samples["digitbot_recognition_seconds_sum"] < 6 * 2.5
    assert samples['digitbot_recognition_seconds_bucket{le="+Inf"}'] == 6
    assert samples['digitbot_bot_api_errors_total{kind="5xx"}'] == 1
    assert samples['digitbot_bot_api_errors_total{kind="429"}'] == 1
    assert samples['digitbot_bot_api_errors_total{kind="network"}'] == 0
    assert samples["digitbot_model_version"] == 1
    assert samples['digitbot_retrain_runs_total{outcome="failed"}'] == 0
    assert samples["digitbot_updates_waiting"] == 0
    assert 0 <= samples["digitbot_updates_in_flight"] <= 1  # at most this scrape's poll
    assert abs(samples["digitbot_bot_api_last_success_timestamp_seconds"] - time.time()) < 30
    assert samples["process_resident_memory_bytes"] > 50e6  # prometheus-client's own


def test_healthz_reports_each_part_and_fails_when_one_fails(monitored) -> None:
    api, bot, port = monitored
    body = wait_health(port, 200)
    assert body["status"] == "ok" and body["mode"] == "polling" and body["uptime_s"] > 0
    assert body["model"] == {"loaded": True, "version": 1}
    assert body["database"] == {"writable": True}
    assert body["bot_api"]["ok"] and body["bot_api"]["last_success_age_s"] <= API_MAX_AGE_S
    assert check_cli(port).returncode == 0

    # another process holds the database's write lock: no write within 2 s -> 503
    with sqlite3.connect(bot.data_dir / "digitbot.sqlite3", isolation_level=None) as db:
        db.execute("BEGIN EXCLUSIVE")
        status, body = healthz(port)
        db.execute("ROLLBACK")
    assert status == 503 and body["status"] == "failing"
    assert body["database"]["writable"] is False and "locked" in body["database"]["error"]
    wait_health(port, 200)

    # Telegram unreachable for longer than HEALTH_API_MAX_AGE_S -> 503, and back
    api.run(api.go_down())
    try:
        body = wait_health(port, 503)
        assert body["bot_api"]["ok"] is False and body["database"]["writable"] is True
        done = check_cli(port)
        assert done.returncode == 1 and '"failing"' in done.stderr
    finally:
        api.run(api.come_back())
    wait_health(port, 200)
    assert bot.alive()


def check_cli(port: int) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command against this bot."""
    env = {**os.environ, "METRICS_PORT": str(port)}
    env.pop("WEBHOOK_URL", None)
    return subprocess.run([sys.executable, "-m", "bot.healthcheck"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)


def test_healthcheck_cli_without_an_endpoint_says_what_to_set(tmp_path: Path) -> None:
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
