"""/retrain: `python -m model.train` in a separate OS process while the bot keeps serving.

The child runs at low CPU priority (RETRAIN_NICE) with few TensorFlow threads
(RETRAIN_THREADS), or is the operator's RETRAIN_COMMAND, which may train anywhere else. Its
`PROGRESS {json}` lines become edits of one message in the admin's chat. When it exits, the new
and the current model are both scored with LiteRT on the same held-out data (MNIST's test
split, real handwriting of held-out writers, held-out users' corrections: bot/gate.py), and the
new one is promoted only if it is not worse on any of them. A failed or killed run leaves the
current model serving and is reported; one run at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from telegram import Bot
from telegram.error import TelegramError

from bot import gate, metrics, retry
from bot.config import Settings
from bot.models import MODEL_FILE, ModelRegistry, ServingModel, read_metrics
from bot.retention import prune_runs
from bot.storage import Corrections

log = logging.getLogger(__name__)

PROGRESS_PREFIX = "PROGRESS "
KERAS_FILE = "model.keras"  # what `model.train --init` starts from
STOP_GRACE_S = 10
MAX_LINE_BYTES = 1 << 20  # TensorFlow can print very long lines
# Starts the training with "terminate me when my parent dies" set (Linux), so a killed bot never
# leaves an orphan training, at niceness argv[2]; then becomes the command (argv[3:]) via exec.
LAUNCHER = (
    "import os, signal, sys\n"
    "try:\n"
    "    import ctypes; ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "os.nice(int(sys.argv[2]))\n"
    "if os.getppid() == int(sys.argv[1]):\n"
    "    os.execv(sys.argv[3], sys.argv[3:])\n"
)
# Not the training's business (a RETRAIN_COMMAND may hand its environment to other machines).
SECRET_ENV = ("BOT_TOKEN", "WEBHOOK_SECRET")


@dataclass
class Outcome:
    """What a finished run led to (for the admin's message and the tests)."""

    text: str
    result: str = "failed"  # promoted | kept | failed (metrics.RETRAIN_RUNS)


def fmt_pct(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction * 100:.2f}%"


class Retrainer:
    """Runs one training at a time and reports to the admin who asked."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        serving: Callable[[], ServingModel],
        swap: Callable[[ServingModel], None],
    ) -> None:
        self.settings = settings
        self.registry = registry
        self._serving = serving
        self._swap = swap
        self._task: asyncio.Task[Outcome] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = False

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def task(self) -> asyncio.Task[Outcome] | None:
        return self._task

    def start(self, bot: Bot, chat_id: int, epochs: int | None) -> bool:
        """Start a run in the background; False when one is already running."""
        if self.busy or self._stopping:
            return False
        self._task = asyncio.create_task(self._run(bot, chat_id, epochs), name="retrain")
        return True

    async def stop(self) -> None:
        """On shutdown: terminate the child (SIGTERM, then SIGKILL) and wait for the report."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            log.info("Stopping the training process %s", proc.pid)
            _signal_group(proc, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
            except TimeoutError:
                _signal_group(proc, signal.SIGKILL)
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_S)

    async def _run(self, bot: Bot, chat_id: int, epochs: int | None) -> Outcome:
        retry.CURRENT.set(None)  # its calls get retry deadlines of their own, not /retrain's
        current = self._serving()
        try:
            outcome = await self._train_and_decide(bot, chat_id, epochs, current)
        except Exception as exc:  # the bot must keep serving whatever happens here
            log.exception("Retraining failed")
            outcome = Outcome(f"❌ Retraining failed: {exc}. v{current.version} keeps serving.")
        metrics.RETRAIN_RUNS.labels(outcome.result).inc()
        await _send(bot, chat_id, outcome.text)
        log.info("Retraining finished: %s", outcome.text)
        return outcome

    async def _train_and_decide(
        self, bot: Bot, chat_id: int, epochs: int | None, current: ServingModel
    ) -> Outcome:
        data = self.settings.mnist_path
        assert data is not None, "the /retrain handler checks the data before start()"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        work = self.settings.data_dir / "retrain" / stamp
        work.mkdir(parents=True, exist_ok=True)
        run_dir = self.registry.training_dir()

        # users' feedback, capped per user so no one steers the model (storage.py)
        feedback = await asyncio.to_thread(
            self.registry.storage.training_corrections, self.settings.corrections_per_user,
            self.settings.corrections_user_share)
        x_extra, y_extra = feedback.x, feedback.y
        await asyncio.to_thread(prune_runs, work.parent, self.settings.retrain_keep_runs)
        extra = work / "corrections.npz" if len(x_extra) else None
        if extra is not None:
            np.savez(extra, x=x_extra, y=y_extra)
        init = fine_tune_base(self.settings, current.path)
        cmd, env = training_command(self.settings, run_dir, data, extra, epochs, init)
        start = (f"fine-tuning v{current.version}'s weights" if init
                 else "training a new model from scratch")
        progress = await bot.send_message(
            chat_id,
            f"🏋️ Retraining started on {data.name} + {len(x_extra)} feedback samples. "
            f"v{current.version} keeps serving meanwhile; {start}.\n{feedback_line(feedback)}",
        )
        self._proc = proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LAUNCHER, str(os.getpid()), str(self.settings.retrain_nice),
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            limit=MAX_LINE_BYTES, start_new_session=True,  # its own group: stopped as a whole
        )
        log.info("Training started (pid %s): %s", proc.pid, " ".join(cmd))
        stderr_tail: deque[str] = deque(maxlen=20)
        with (work / "train.log").open("w") as logfile:
            await asyncio.gather(
                self._follow(proc.stdout, bot, progress.chat_id, progress.message_id, logfile),
                _drain(proc.stderr, stderr_tail, logfile),
            )
            code = await proc.wait()
        self._proc = None

        if code != 0:
            shutil.rmtree(run_dir, ignore_errors=True)
            why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            if self._stopping:
                why += ", the bot is shutting down"
            last = next((line for line in reversed(stderr_tail) if line.strip()), "")
            detail = f": {last.strip()[:300]}" if last else ""
            return Outcome(
                f"❌ Retraining failed ({why}){detail}. v{current.version} keeps serving."
            )

        if not (run_dir / MODEL_FILE).is_file():
            shutil.rmtree(run_dir, ignore_errors=True)
            return Outcome(
                f"❌ Retraining failed: the training ended without writing {MODEL_FILE} into "
                f"its run directory. v{current.version} keeps serving."
            )
        trained_acc = read_metrics(run_dir).get("test_accuracy")  # (install moves run_dir)
        # Score both models on the same held-out data with the same (LiteRT) code (gate.py).
        held = await asyncio.to_thread(
            gate.load_held_out, data, self.settings.retrain_eval_cells,
            (feedback.held_x, feedback.held_y), self.settings.kensanata_path)
        new = await asyncio.to_thread(gate.score, run_dir / MODEL_FILE, held)
        old = await asyncio.to_thread(gate.score, current.path / MODEL_FILE, held)
        promote = gate.not_worse(new, old, self.settings.promote_tolerance)
        note = f"retrained; {len(x_extra)} feedback samples"
        # fsyncs and a commit: off the event loop (the storage's lock orders the commit)
        version = await asyncio.to_thread(
            self.registry.install, run_dir, new[0].accuracy, activate=promote, note=note,
            scores=gate.to_json(new))
        await asyncio.to_thread(self.registry.storage.set_scores, current.version,
                                gate.to_json(old))
        scores = gate.describe(new, old, held, current.version)
        if trained_acc is not None:
            scores += f"\n(the training's own report: {fmt_pct(trained_acc)} on MNIST's test split)"
        if not promote:
            return Outcome(
                f"⚖️ Kept v{current.version}: the new model is worse on held-out data. "
                f"It is stored as v{version}, not serving.\n{scores}",
                result="kept",
            )
        row = await asyncio.to_thread(self.registry.get, version)
        assert row is not None
        self._swap(await asyncio.to_thread(self.registry.load, row))
        if gate.not_worse(new, old, 0.0):
            return Outcome(f"✅ v{version} is now serving: not worse on held-out data.\n{scores}",
                           result="promoted")
        tolerance = self.settings.promote_tolerance * 100
        return Outcome(
            f"✅ v{version} is now serving: worse on held-out data, but within "
            f"PROMOTE_TOLERANCE ({tolerance:.2f} points).\n{scores}",
            result="promoted",
        )

    async def _follow(
        self, stream: asyncio.StreamReader | None, bot: Bot, chat_id: int, message_id: int,
        logfile,
    ) -> None:
        """Turn PROGRESS lines into (throttled) edits of the progress message."""
        assert stream is not None
        last_edit = 0.0
        async for raw in stream:
            line = raw.decode(errors="replace")
            logfile.write(line)
            if not line.startswith(PROGRESS_PREFIX):
                continue
            try:
                report = json.loads(line[len(PROGRESS_PREFIX):])
                epoch, total = int(report["epoch"]), int(report["epochs"])
                val = float(report["val_accuracy"])
            except (ValueError, KeyError, TypeError):
                log.warning("Unreadable progress line: %r", line[:200])
                continue
            now = time.monotonic()
            if epoch < total and now - last_edit < self.settings.retrain_edit_interval_s:
                continue
            last_edit = now
            await _edit(
                bot, chat_id, message_id,
                f"🏋️ Retraining: epoch {epoch}/{total}, validation accuracy {val * 100:.2f}%",
            )


def fine_tune_base(settings: Settings, serving: Path) -> Path | None:
    """The serving model's directory to fine-tune (RETRAIN_FROM=serving), where it holds the
    Keras model the training starts from; else None: a new model from scratch."""
    if settings.retrain_from == "serving" and (serving / KERAS_FILE).is_file():
        return serving
    return None


def training_command(settings: Settings, run_dir: Path, data: Path, extra: Path | None,
                     epochs: int | None,
                     init: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """The training command and its environment. Every command gets the job in
    DIGITBOT_* variables; RETRAIN_COMMAND runs under /bin/sh, so it can use them."""
    threads = settings.retrain_threads
    job = {
        "DIGITBOT_RUN_DIR": str(run_dir.resolve()),
        "DIGITBOT_DATA": str(data.resolve()),
        "DIGITBOT_EXTRA": str(extra.resolve()) if extra else "",
        "DIGITBOT_EPOCHS": str(epochs or ""),
        "DIGITBOT_THREADS": str(threads or ""),
        "DIGITBOT_INIT": str(init.resolve()) if init else "",
    }
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env |= {"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **job}
    if settings.retrain_command:
        return ["/bin/sh", "-c", settings.retrain_command], env
    cmd = [sys.executable, "-m", "model.train", "--data", job["DIGITBOT_DATA"],
           "--out", job["DIGITBOT_RUN_DIR"]]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    if extra is not None:
        cmd += ["--extra", job["DIGITBOT_EXTRA"]]
    if threads:
        cmd += ["--threads", str(threads)]
    if init is not None:
        cmd += ["--init", job["DIGITBOT_INIT"]]
    return cmd, env


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Signal the training and whatever it started (a RETRAIN_COMMAND's shell and children)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


async def _drain(stream: asyncio.StreamReader | None, tail: deque[str], logfile) -> None:
    """Read the child's stderr (TensorFlow is chatty) so its pipe never fills up."""
    assert stream is not None
    async for raw in stream:
        line = raw.decode(errors="replace")
        logfile.write(line)
        tail.append(line)


async def _send(bot: Bot, chat_id: int, text: str) -> None:
    try:
        await bot.send_message(chat_id, text)
    except TelegramError:
        log.exception("Could not send the retrain report")


async def _edit(bot: Bot, chat_id: int, message_id: int, text: str) -> None:
    try:
        await bot.edit_message_text(text, chat_id=chat_id, message_id=message_id)
    except TelegramError as exc:  # progress is best effort; the training goes on
        log.warning("Could not edit the progress message: %s", exc)


def check_trainer(settings: Settings) -> str | None:
    """Why this installation can't train, or None. Cheap: TensorFlow is looked for, not loaded."""
    if settings.retrain_command or importlib.util.find_spec("tensorflow") is not None:
        return None
    return (
        "this installation has no TensorFlow, which training needs. Install the training "
        "extra where the bot runs (pip install 'digitbot[train]', or the image's train "
        "target) and send /retrain again, or set RETRAIN_COMMAND to train elsewhere."
    )


def feedback_line(feedback: Corrections) -> str:
    """The /retrain start message's line on what users' feedback goes into the training."""
    dropped = []
    if feedback.duplicates:
        dropped.append(f"{feedback.duplicates} repeated crops")
    if feedback.over_cap:
        dropped.append(f"{feedback.over_cap} over the cap of {feedback.per_user} per user")
    line = f"Feedback used: {len(feedback.y)} samples from {feedback.users} users"
    line += f" (left out: {', '.join(dropped)})." if dropped else "."
    if len(feedback.held_y):
        line += f" Held out to test the new model: {len(feedback.held_y)}."
    return line


def check_data(path: Path | None) -> str | None:
    """Why retraining can't start with this MNIST_PATH, or None when it can."""
    if path is None:
        return "MNIST_PATH is not set, so there is no training data. Set it and restart the bot."
    if not path.is_file():
        return f"The training data {path} is missing (MNIST_PATH). Fix it and restart the bot."
    return None
