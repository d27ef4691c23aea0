"""The bot's own Application (bot.app.build_application) polling the stand-in in the test's
event loop: handler-level tests without a child process, with the real HTTP client, rate
limiter, storage, model and handlers. What only a process can show (startup, signals, kill -9,
the log file, no TensorFlow) stays with tests.support.bot_process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from telegram import Update

from bot.app import BotApplication, build_application, post_init, post_shutdown, post_stop
from bot.config import Settings
from tests.support.bot_process import ADMIN_ID, SAMPLE
from tests.support.standin import BotApiStandIn


def bot_settings(api: BotApiStandIn, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a bot talking to ``api``: the defaults, the test admin, the sample data;
    ``overrides`` by field name (e.g. rate_limit=False). The environment and .env still apply
    to fields not given here, as for the real bot; explicit values win."""
    values: dict[str, Any] = {
        "bot_token": api.token, "telegram_api_url": api.url, "data_dir": data_dir,
        "admin_ids": frozenset({ADMIN_ID}), "mnist_path": SAMPLE,
        "retrain_nice": 0,  # as BotProcess: a test's training must not wait behind the machine
        "retrain_eval_cells": 60,  # as BotProcess: the gate reads a few real cells
        "retrain_from": "scratch",  # as BotProcess: a new model, reliably worse than the release
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def running_bot(api: BotApiStandIn, data_dir: Path,
                      **overrides: Any) -> AsyncIterator[BotApplication]:
    """The Application polling ``api`` until the block ends, then shut down as `python -m bot`
    does (post_init, polling, handlers; on exit post_stop, post_shutdown)."""
    application = build_application(bot_settings(api, data_dir, **overrides))
    async with application:  # initialize() ... shutdown()
        await post_init(application)
        assert application.updater is not None
        await application.updater.start_polling(allowed_updates=Update.ALL_TYPES)
        await application.start()
        try:
            yield application
        finally:
            await application.updater.stop()
            await application.stop()
            await post_stop(application)
    await post_shutdown(application)
