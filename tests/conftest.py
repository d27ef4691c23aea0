"""Shared fixtures; what they build lives in tests/support/ (see its docstring)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from bot.app import BotApplication
from tests.support import BotApiStandIn, BotProcess
from tests.support.in_process import running_bot


@pytest.fixture(scope="module")
def standin() -> Iterator[BotApiStandIn]:
    """One Bot API stand-in per test module, serving from a background thread."""
    api = BotApiStandIn()
    with api.in_thread():
        yield api


@pytest.fixture(scope="module")
def bot_factory(
    standin: BotApiStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., BotProcess]]:
    """Start bots (env overrides as keywords); all stopped at the end of the module, and
    their logs checked for the token."""
    bots: list[BotProcess] = []

    def start(name: str = "bot", **env: str) -> BotProcess:
        data_dir = tmp_path_factory.mktemp(name) / "data"
        bot = BotProcess(standin, data_dir, **env).start()
        bots.append(bot)
        return bot

    yield start
    for bot in bots:
        bot.stop_and_check_log()


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    """A Bot API stand-in serving in the test's own event loop (for async tests)."""
    async with BotApiStandIn() as standin:
        yield standin


@pytest.fixture
async def app(api: BotApiStandIn, tmp_path: Path) -> AsyncIterator[BotApplication]:
    """The bot's Application (the release model, Telegram's limits) polling `api` in the
    test's event loop; shut down as `python -m bot` shuts down."""
    async with running_bot(api, tmp_path / "data") as application:
        yield application
