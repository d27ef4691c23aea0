"""The bot's Prometheus metrics (prometheus-client, its default registry), all in one place.

`GET /metrics` serves them (bot/web.py), counting the inbox's waiting updates in the database
thread first (INBOX_WAITING; the other gauges are read from memory when scraped). Labelled
series are created at import with zero, so an alert on their rate works before the first event.
Besides these, prometheus-client's own process metrics come along (CPU seconds, resident
memory, open files, start time).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram
from telegram.ext import Application

PHOTO_STATUSES = ("ok", "no_digit", "error")  # model.recognize.Result.status
API_ERROR_KINDS = ("429", "5xx", "4xx", "network", "timeout")
RETRAIN_OUTCOMES = ("promoted", "kept", "failed")

PHOTOS = Counter(
    "digitbot_photos_read", "Photos and image files read, by result (ok, no_digit, error)",
    ["status"],
)
RECOGNITION_SECONDS = Histogram(
    "digitbot_recognition_seconds", "Time to read one photo: decode, find digits, the model",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
UPDATES_WAITING = Gauge(
    "digitbot_updates_waiting", "Updates received from Telegram, not yet being handled"
)
INBOX_WAITING = Gauge(
    "digitbot_inbox_waiting",
    "Updates waiting in the durable inbox on disk, not yet in memory (a backlog beyond "
    "MAX_CONCURRENT_UPDATES, or parked after their retries)",
)
UPDATES_IN_FLIGHT = Gauge(
    "digitbot_updates_in_flight", "Updates being handled now (photos waiting in a user's lane too)"
)
BOT_API_ERRORS = Counter(
    "digitbot_bot_api_errors", "Bot API requests that failed, by kind", ["kind"]
)
BOT_API_LAST_SUCCESS = Gauge(
    "digitbot_bot_api_last_success_timestamp_seconds",
    "Unix time of the last Bot API request Telegram answered with success",
)
MODEL_VERSION = Gauge("digitbot_model_version", "Version of the model serving now")
RETRAIN_RUNS = Counter(
    "digitbot_retrain_runs", "Finished /retrain runs, by outcome (promoted, kept, failed)",
    ["outcome"],
)
WEBHOOK_REFUSED = Counter(
    "digitbot_webhook_refused",
    "Webhook requests refused with 403 (no or a wrong X-Telegram-Bot-Api-Secret-Token)",
)

for _status in PHOTO_STATUSES:
    PHOTOS.labels(_status)
for _kind in API_ERROR_KINDS:
    BOT_API_ERRORS.labels(_kind)
for _outcome in RETRAIN_OUTCOMES:
    RETRAIN_RUNS.labels(_outcome)

_last_api_success: float | None = None  # time.monotonic() of the last success


def photo_read(status: str, seconds: float) -> None:
    """One photo went through the recognizer."""
    PHOTOS.labels(status).inc()
    RECOGNITION_SECONDS.observe(seconds)


def api_answered(status: int) -> None:
    """The Bot API answered a request with this HTTP status."""
    global _last_api_success
    if status < 300:
        _last_api_success = time.monotonic()
        BOT_API_LAST_SUCCESS.set_to_current_time()
    elif status == 429:
        BOT_API_ERRORS.labels("429").inc()
    elif status >= 500:
        BOT_API_ERRORS.labels("5xx").inc()
    else:
        BOT_API_ERRORS.labels("4xx").inc()


def api_failed(kind: str) -> None:
    """A Bot API request got no answer: "network" or "timeout"."""
    BOT_API_ERRORS.labels(kind).inc()


def api_success_age() -> float | None:
    """Seconds since Telegram last answered with success; None before the first success."""
    return None if _last_api_success is None else time.monotonic() - _last_api_success


def watch(application: Application, model_version: Callable[[], int]) -> None:
    """Gauges read when scraped: the update queue, updates in flight, the serving version."""
    UPDATES_WAITING.set_function(lambda: application.update_queue.qsize())
    UPDATES_IN_FLIGHT.set_function(
        lambda: application.update_processor.current_concurrent_updates
    )
    MODEL_VERSION.set_function(model_version)
