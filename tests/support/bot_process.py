"""The real bot (`python -m bot`) as a child process pointed at a Bot API stand-in."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.support.standin import BotApiStandIn, Call

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "mnist_sample.npz"  # 700 MNIST images; 200 in its test split
ADMIN_ID = 4242
BOT_START_S = 30  # a cold start on a busy 2-core machine; a warm one polls within ~1.5 s


class BotProcess:
    """`python -m bot` as a child process with its own DATA_DIR and log file."""

    def __init__(self, api: BotApiStandIn, data_dir: Path, **env: str) -> None:
        self.api = api
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}-bot.log"
        self.env = {
            **os.environ,
            "BOT_TOKEN": api.token,
            "TELEGRAM_API_URL": api.url,
            "DATA_DIR": str(data_dir),
            "ADMIN_IDS": str(ADMIN_ID),
            "MNIST_PATH": str(SAMPLE),
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            # the default (10) would hand a test's training to whatever else loads a shared
            # machine; tests/test_retrain_command.py checks that the niceness is applied
            "RETRAIN_NICE": "0",
            "RETRAIN_EVAL_CELLS": "60",  # the gate's real handwriting: a few, tests are short
            # a new model: one epoch on 450 images, reliably worse than the release (the gate's
            # "kept" path); fine-tuning the serving model, the default, has its own tests
            "RETRAIN_FROM": "scratch",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.cwd = ROOT  # `bot` and `model` from the checkout (an installed copy elsewhere)

    def start(self, timeout: float = BOT_START_S, python: str = sys.executable) -> BotProcess:
        """Start the bot (with ``python``: another venv's) and wait until it takes updates."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [python, "-m", "bot"], cwd=self.cwd, env=self.env, stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self.api.run(self.wait_ready(timeout))
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"the bot did not start:\n{self.log()[-3000:]}") from None
        return self

    async def wait_ready(self, timeout: float) -> object:
        """Polling: the first getUpdates (a webhook bot waits for its setWebhook instead)."""
        return await self.api.wait_polling(after=self.started_at, timeout=timeout)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, text: str, timeout: float = 20) -> str:
        """The log once it contains ``text`` (the bot writes it line by line, unbuffered)."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in the bot's log within {timeout} s")
            time.sleep(0.05)
        return log

    def kill(self) -> None:
        """SIGKILL: no cleanup at all."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop_and_check_log(self) -> None:
        """Stop; the token's secret part (so the token too) must be nowhere in the log, and
        the bot must have called only methods the Bot API has."""
        self.stop()
        assert self.api.token.split(":")[1] not in self.log(), "the bot token leaked into the log"
        assert not self.api.unknown_methods, f"unknown Bot API methods: {self.api.unknown_methods}"

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (graceful shutdown) and wait; SIGKILL if it hangs. Returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def training_children(self) -> list[psutil.Process]:
        """The bot's `python -m model.train` children still running."""
        found = []
        for child in psutil.Process(self.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):  # it just ended
                if child.status() != psutil.STATUS_ZOMBIE and "model.train" in " ".join(
                    child.cmdline()
                ):
                    found.append(child)
        return found


def kill_on(api: BotApiStandIn, bot: BotProcess, nth: int, method: str = "*",
            wanted: Callable[[Call], bool] = lambda call: True) -> threading.Event:
    """SIGKILL the bot the moment the `nth` call of `method` that it `wanted` is delivered,
    before the bot hears the answer; the event is set once it is killed."""
    killed = threading.Event()
    seen = 0

    def hook(call: Call) -> bool:
        nonlocal seen
        if not wanted(call):
            return False
        seen += 1
        if seen < nth:
            return False
        assert bot.proc is not None
        bot.proc.kill()
        killed.set()
        return True

    api.on_delivered(method, hook)
    return killed
