"""digitbot: handwritten digits and numbers from photos, read by a LiteRT model.

Handlers are small; `main()` builds the Application and registers them in one block.
Recognition runs in a thread pool, each user's photos in their own lane (fairness), every
outgoing call through the rate limiter and its retry policy, every update through the durable
inbox, SQLite in its own thread, and the active model can be swapped while serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from telegram import BotCommand, InputMediaPhoto, Message, Update
from telegram.constants import ChatAction
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackContext,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    ExtBot,
    MessageHandler,
    filters,
)

from bot import replies
from bot.charts import stats_pictures
from bot.config import Settings, load_settings
from bot.fairness import UserLanes
from bot.inbox import InboxProcessor, InboxQueue
from bot.logs import setup_logging
from bot.models import ModelRegistry, ServingModel, read_metrics
from bot.ratelimit import BotRateLimiter
from bot.request import AiohttpRequest
from bot.retention import Retention
from bot.retrain import Retrainer, check_data
from bot.retry import CURRENT, RetryPolicy, is_transient
from bot.storage import Storage
from model.recognize import Result, render_annotated

log = logging.getLogger(__name__)

COMMANDS = [
    BotCommand("start", "What I do"),
    BotCommand("help", "How to take a good photo"),
    BotCommand("stats", "Model accuracy, training curves, live figures"),
    BotCommand("forget", "Delete everything stored about you"),
    BotCommand("retrain", "Admins: train a new model [EPOCHS]"),
    BotCommand("models", "Admins: model versions"),
    BotCommand("rollback", "Admins: back to the previous model"),
]
MAX_PHOTO_SIDE = 1280  # Telegram's largest regular photo size; bigger ones cost time, not accuracy
ADMIN_COMMANDS = ("retrain", "models", "rollback")
EPOCHS_RE = re.compile(r"[0-9]{1,9}")


@dataclass
class Services:
    """Long-lived parts of the bot, built once in build_application()."""

    settings: Settings
    storage: Storage
    registry: ModelRegistry
    retrainer: Retrainer
    executor: ThreadPoolExecutor
    lanes: UserLanes
    retry: RetryPolicy
    inbox: InboxQueue
    retention: Retention


class BotData:
    """The application's bot_data: the services and the model serving now (swapped whole by
    /retrain and /rollback). Both are set in build_application() before any update."""

    services: Services
    model: ServingModel


# ExtBot[int]: the bot with a rate limiter (AIORateLimiter's per-call argument is an int).
class BotContext(CallbackContext[ExtBot[int], dict[Any, Any], dict[Any, Any], BotData]):
    """The handlers' context: `context.services` and `context.model`, typed."""

    @property
    def services(self) -> Services:
        return self.bot_data.services

    @property
    def model(self) -> ServingModel:
        return self.bot_data.model

    @model.setter
    def model(self, model: ServingModel) -> None:
        self.bot_data.model = model


# The bot's Application type (its JobQueue's type parameter is PTB's default: Any here).
BotApplication = Application[ExtBot[int], BotContext, dict[Any, Any], dict[Any, Any], BotData, Any]


def message_of(update: Update) -> Message:
    """The message a message or command handler runs for (its filters ensure there is one)."""
    message = update.effective_message
    assert message is not None
    return message


def sender_id(update: Update) -> int:
    """Who sent the update: the user, or the chat for anonymous group admins."""
    sender = update.effective_user or update.effective_chat
    assert sender is not None
    return sender.id


def is_admin(update: Update, settings: Settings) -> bool:
    """Admins are numeric Telegram user ids from ADMIN_IDS; names can change, ids can't."""
    user = update.effective_user
    return user is not None and user.id in settings.admin_ids


# --- users ------------------------------------------------------------------------------


async def start(update: Update, context: BotContext) -> None:
    """Say what the bot does and how to take a good photo."""
    text = replies.HELP
    if is_admin(update, context.services.settings):
        text += replies.ADMIN_HELP
    await message_of(update).reply_text(text)


async def photo(update: Update, context: BotContext) -> None:
    """Read a photo: the largest size up to 1280 px (or the smallest when all are bigger)."""
    sizes = message_of(update).photo
    fitting = [s for s in sizes if max(s.width, s.height) <= MAX_PHOTO_SIDE]
    chosen = max(fitting, key=lambda s: s.width * s.height) if fitting else min(
        sizes, key=lambda s: s.width * s.height
    )
    await read_image(update, context, chosen.file_id, chosen.file_size)


async def document(update: Update, context: BotContext) -> None:
    """Read an image sent as a file; explain politely when it isn't one."""
    message = message_of(update)
    doc = message.document
    assert doc is not None  # filters.Document
    mime = doc.mime_type or mimetypes.guess_type(doc.file_name or "")[0] or ""
    if mime == "application/pdf" or (doc.file_name or "").lower().endswith(".pdf"):
        await message.reply_text(replies.PDF)
    elif not mime.startswith("image/"):
        await message.reply_text(replies.NOT_AN_IMAGE)
    else:
        await read_image(update, context, doc.file_id, doc.file_size)


async def read_image(
    update: Update, context: BotContext, file_id: str, size: int | None
) -> None:
    """Download, recognize off the event loop, store, reply (in the user's own lane)."""
    svc = context.services
    message = message_of(update)
    limit = svc.settings.max_file_bytes
    if size and size > limit:
        await message.reply_text(_too_big(size, limit))
        return

    async def on_queue(waiting: int) -> None:
        with contextlib.suppress(TelegramError):  # about the burst, not this photo: no quote
            await message.reply_text(replies.QUEUED.format(waiting=waiting), do_quote=False)

    async with svc.lanes.turn(sender_id(update), on_queue):
        tg_file = await context.bot.get_file(file_id)
        if tg_file.file_size and tg_file.file_size > limit:
            await message.reply_text(_too_big(tg_file.file_size, limit))
            return
        # the download bypasses the Bot API methods (and so the rate limiter): retried here
        data = bytes(await svc.retry.call(tg_file.download_as_bytearray, "download"))
        model = context.model
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(svc.executor, recognize_safely, model, data)
        await reply_reading(update, context, model, data, result)


def recognize_safely(model: ServingModel, data: bytes) -> Result:
    """recognize() promises not to raise on bad input; if it ever does, the user still gets
    a clear answer and the traceback goes to the log."""
    try:
        return model.recognizer.recognize(data)
    except Exception:
        log.exception("The recognizer failed on a %d-byte file", len(data))
        return Result(status="error", error=replies.UNREADABLE)


def annotate_safely(data: bytes, result: Result) -> bytes | None:
    """The photo with boxes and labels, or None (then the reading goes out as text)."""
    try:
        return render_annotated(data, result)
    except Exception:
        log.exception("Could not draw the annotated photo")
        return None


async def reply_reading(
    update: Update,
    context: BotContext,
    model: ServingModel,
    data: bytes,
    result: Result,
) -> None:
    """Store the prediction, then answer: text, or the annotated photo for numbers and doubts."""
    svc = context.services
    message = message_of(update)
    threshold = svc.settings.doubt_threshold
    single = result.status == "ok" and len(result.digits) == 1
    prediction_id = await svc.storage.run(
        svc.storage.add_prediction,
        update_id=update.update_id,
        user_id=sender_id(update),
        chat_id=message.chat_id,
        status=result.status,
        reading=result.text,
        confidence=replies.reading_confidence(result) if result.status == "ok" else None,
        latency_ms=result.seconds * 1000,
        model_version=model.version,
        crop=result.digits[0].crop if single else None,
    )
    if result.status == "no_digit":
        await message.reply_text(replies.NO_DIGIT)
        return
    if result.status != "ok":
        await message.reply_text(result.error or replies.UNREADABLE)
        return

    text = replies.reading_text(result, threshold)
    keyboard = replies.feedback_keyboard(prediction_id, result.digits[0].digit) if single else None
    picture = None
    if len(result.digits) > 1 or replies.is_doubtful(result, threshold):
        loop = asyncio.get_running_loop()
        picture = await loop.run_in_executor(svc.executor, annotate_safely, data, result)
    sent: Message
    if picture is not None:
        sent = await message.reply_photo(picture, caption=text, reply_markup=keyboard)
    else:
        sent = await message.reply_text(text, reply_markup=keyboard)
    if single:
        await svc.storage.run(svc.storage.set_reply_message, prediction_id, sent.message_id)


async def feedback(update: Update, context: BotContext) -> None:
    """✅ / 0–9 under a reading: validate, commit the label, then acknowledge."""
    svc = context.services
    query = update.callback_query
    assert query is not None  # CallbackQueryHandler
    parsed = replies.parse_feedback(query.data)
    if parsed is None:
        await answer_query(update, "That button isn't one of mine.")
        return
    prediction_id, label = parsed
    prediction = await svc.storage.run(svc.storage.prediction, prediction_id)
    message = query.message
    if (
        prediction is None
        or prediction.crop is None
        or prediction.user_id != query.from_user.id
        or message is None
        or prediction.chat_id != message.chat.id
        or prediction.message_id != message.message_id
    ):
        await answer_query(update, "This button doesn't belong to that reading.")
        return
    if not await svc.storage.run(svc.storage.add_feedback, prediction, label):  # committed
        await answer_query(update, "Already noted — thank you!")
        return
    mark = replies.feedback_mark(prediction.reading, label)
    await answer_query(update, mark)
    # the mark under the reading is a courtesy: the feedback is stored and acknowledged
    with contextlib.suppress(TelegramError):  # e.g. the message is too old to edit
        if isinstance(message, Message) and message.caption is not None:
            await query.edit_message_caption(f"{message.caption}\n\n{mark}")
        elif isinstance(message, Message) and message.text is not None:
            await query.edit_message_text(f"{message.text}\n\n{mark}")
        else:
            await query.edit_message_reply_markup(None)


async def answer_query(update: Update, text: str) -> None:
    """Answer a button press. One handled again after a restart may be too old to answer
    (Telegram allows seconds); what it did is stored, so that is no error."""
    query = update.callback_query
    assert query is not None
    try:
        await query.answer(text)
    except BadRequest as exc:
        if "query is too old" not in exc.message:
            raise
        log.info("Button press %s answered too late: %s", query.id, exc.message)


async def stats(update: Update, context: BotContext) -> None:
    """The model's charts with its version, accuracy, training date and live figures."""
    svc = context.services
    model = context.model
    version = await svc.storage.run(svc.registry.get, model.version)
    assert version is not None, "the serving model is always a registered version"
    metrics = read_metrics(model.path)
    trained = metrics.get("created_at") or version.created_at
    if not trained:  # a model without metrics.json: the date of its file
        mtime = (model.path / "model.tflite").stat().st_mtime
        trained = datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")
    live = await svc.storage.run(svc.storage.live_stats)
    caption = replies.stats_caption(version, metrics, trained[:10], live)
    message = message_of(update)
    with contextlib.suppress(TelegramError):  # "sending a photo…" is a courtesy too
        await context.bot.send_chat_action(message.chat_id, ChatAction.UPLOAD_PHOTO)
    latencies = await svc.storage.run(svc.storage.recent_latencies)
    pictures = await asyncio.to_thread(stats_pictures, model.path, latencies)
    if len(pictures) == 1:
        await message.reply_photo(pictures[0], caption=caption)
    else:
        media = [InputMediaPhoto(p, caption=caption if i == 0 else None)
                 for i, p in enumerate(pictures)]
        await message.reply_media_group(media)


async def forget(update: Update, context: BotContext) -> None:
    """Delete everything stored about the sender and say how many records went."""
    svc = context.services
    gone = await svc.storage.run(svc.storage.forget_user, sender_id(update))
    await message_of(update).reply_text(replies.forgotten(gone))


async def unknown_command(update: Update, context: BotContext) -> None:
    """Point unknown commands at /help."""
    message = message_of(update)
    command = (message.text or "").split()[0][:64]
    await message.reply_text(replies.UNKNOWN_COMMAND.format(command=command))


async def other(update: Update, context: BotContext) -> None:
    """Text, stickers, voice, …: explain what the bot reads."""
    await message_of(update).reply_text(replies.TEXT_ONLY)


# --- admins -------------------------------------------------------------------------------


async def retrain(update: Update, context: BotContext) -> None:
    """Admins: train a new model in a separate process; promote it if not worse."""
    svc = context.services
    message = message_of(update)
    maximum = svc.settings.retrain_max_epochs
    usage = f"Usage: /retrain [EPOCHS], EPOCHS a whole number from 1 to {maximum}."
    args = context.args or []
    if len(args) > 1 or (args and not EPOCHS_RE.fullmatch(args[0])):
        await message.reply_text(f"I can't read “{' '.join(args)[:40]}” as epochs. {usage}")
        return
    epochs = int(args[0]) if args else svc.settings.retrain_default_epochs
    if epochs is not None and not 1 <= epochs <= maximum:
        await message.reply_text(f"{epochs} epochs is out of range. {usage}")
        return
    problem = check_data(svc.settings.mnist_path)
    if problem:
        await message.reply_text(f"Can't retrain: {problem}")
        return
    if not svc.retrainer.start(context.bot, message.chat_id, epochs):
        await message.reply_text("A retraining is already running; I'll report when it ends.")


async def models(update: Update, context: BotContext) -> None:
    """Admins: list the model versions with their accuracy; the serving one is marked."""
    svc = context.services
    versions = await svc.storage.run(svc.registry.versions)
    await message_of(update).reply_text(replies.models_text(versions))


async def rollback(update: Update, context: BotContext) -> None:
    """Admins: serve the previous version again (hot swap, no restart)."""
    svc = context.services
    message = message_of(update)
    if svc.retrainer.busy:
        await message.reply_text("A retraining is running; roll back after it reports.")
        return
    current = context.model
    target = await svc.storage.run(svc.registry.rollback_target)
    if target is None:
        await message.reply_text(f"Nothing to roll back to: v{current.version} is the first.")
        return
    loaded = await asyncio.to_thread(svc.registry.load, target)  # fails before anything changes
    await svc.storage.run(svc.storage.activate, target.version)
    context.model = loaded
    await message.reply_text(
        f"↩️ Rolled back: v{target.version} is serving (was v{current.version})."
    )


async def admins_only(update: Update, context: BotContext) -> None:
    """An admin command from someone not in ADMIN_IDS: a polite refusal, nothing runs."""
    message = message_of(update)
    command = (message.text or "").split()[0].split("@")[0]
    await message.reply_text(f"Sorry, {command[:33]} is only for the bot's admins.")


# --- plumbing -----------------------------------------------------------------------------


async def error_handler(update: object, context: BotContext) -> None:
    """How an update that failed ends. The Bot API kept failing past the retry deadline: it
    stays in the inbox for a later try. The user blocked the bot: nothing more to do. Anything
    else: log it and tell the user something went wrong (a final, human answer)."""
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    budget = CURRENT.get()
    if error is not None and is_transient(error):
        log.warning("Update %s could not be answered yet: %s", update_id, error)
        if budget is not None:
            budget.unfinished = True
        return
    if isinstance(error, Forbidden):
        log.warning("Update %s ends unanswered: %s", update_id, error)
        return
    log.error("Exception while handling an update", exc_info=error)
    if isinstance(update, Update) and update.effective_chat is not None:
        with contextlib.suppress(TelegramError):
            await context.bot.send_message(update.effective_chat.id, replies.SORRY)


def _too_big(size: int, limit: int) -> str:
    return replies.TOO_BIG.format(size=size / 2**20, limit=limit / 2**20)


async def post_init(application: BotApplication) -> None:
    await application.bot_data.services.inbox.start()  # before polling: the restart's backlog
    try:
        await application.bot.set_my_commands(COMMANDS)
    except TelegramError as exc:  # the menu is a convenience; serving matters more
        log.warning("Could not register the command menu: %s", exc)


async def post_stop(application: BotApplication) -> None:
    await application.bot_data.services.retrainer.stop()  # terminate a running training


async def post_shutdown(application: BotApplication) -> None:
    svc = application.bot_data.services
    svc.executor.shutdown(wait=True)
    svc.storage.close()


def build_application(settings: Settings) -> BotApplication:
    """Open storage, load the active model and wire every handler."""
    storage = Storage(settings.db_path)
    registry = ModelRegistry(storage, settings.models_dir, settings.release_model_dir)
    registry.recover()
    active = registry.active()
    assert active is not None, "recover() leaves one version active"
    serving = registry.load(active)
    log.info("Serving model v%s from %s", serving.version, serving.path)

    retry = RetryPolicy.from_settings(settings)
    inbox = InboxQueue(storage, settings.max_concurrent_updates,
                       settings.inbox_retry_after_s, settings.inbox_max_age.total_seconds())
    root = settings.api_root
    application = (
        ApplicationBuilder()
        .context_types(ContextTypes(context=BotContext, bot_data=BotData))
        .defaults(Defaults(do_quote=True))  # every reply quotes the message it answers
        .token(settings.bot_token.get_secret_value())
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .rate_limiter(BotRateLimiter.from_settings(settings))
        # every update is committed to the inbox before Telegram hears it arrived
        .update_queue(inbox)
        .concurrent_updates(InboxProcessor(inbox, retry, settings.max_concurrent_updates))
        # many users at once wait for a connection (30 s) rather than fail
        .request(AiohttpRequest(settings.http_connections, pool_timeout=30))
        .get_updates_request(AiohttpRequest(1, read_timeout=5))
        .post_init(post_init)
        .post_stop(post_stop)
        .post_shutdown(post_shutdown)
        .build()
    )

    inbox.bot = application.bot
    inbox.running = lambda: application.running
    data = application.bot_data

    def swap(model: ServingModel) -> None:
        data.model = model

    data.model = serving
    data.services = Services(
        settings=settings,
        storage=storage,
        registry=registry,
        retrainer=Retrainer(settings, registry, lambda: data.model, swap),
        executor=ThreadPoolExecutor(settings.recognize_threads, thread_name_prefix="recognize"),
        lanes=UserLanes(settings.user_in_flight, settings.queue_notice_after),
        retry=retry,
        inbox=inbox,
        retention=Retention(storage, settings),
    )
    jobs = application.job_queue
    assert jobs is not None  # python-telegram-bot[job-queue]
    # updates parked after their retries, when their wait is over
    jobs.run_repeating(inbox.job, settings.inbox_retry_after_s, name="inbox")
    jobs.run_repeating(data.services.retention.job, settings.retention_interval_s, first=60,
                       name="retention")

    admins = filters.User(user_id=settings.admin_ids)  # numeric ids only
    application.add_handler(CommandHandler(["start", "help"], start))
    application.add_handler(CommandHandler("stats", stats))
    application.add_handler(CommandHandler("forget", forget))
    application.add_handler(CommandHandler("retrain", retrain, filters=admins))
    application.add_handler(CommandHandler("models", models, filters=admins))
    application.add_handler(CommandHandler("rollback", rollback, filters=admins))
    application.add_handler(CommandHandler(ADMIN_COMMANDS, admins_only))  # everyone else
    application.add_handler(CallbackQueryHandler(feedback))
    new = filters.UpdateType.MESSAGE  # not edits or channel posts
    application.add_handler(MessageHandler(new & filters.PHOTO, photo))
    application.add_handler(MessageHandler(new & filters.Document.ALL, document))
    application.add_handler(MessageHandler(new & filters.COMMAND, unknown_command))
    application.add_handler(MessageHandler(new & filters.ChatType.PRIVATE, other))
    application.add_error_handler(error_handler)
    return application


def main() -> None:
    """Start the bot with long polling; SIGINT/SIGTERM stop it gracefully."""
    started = time.monotonic()
    settings = load_settings()
    setup_logging(settings.log_level, settings.bot_token.get_secret_value())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    application = build_application(settings)
    log.info("Ready in %.2f s; polling %s", time.monotonic() - started, settings.api_root)
    application.run_polling(allowed_updates=Update.ALL_TYPES, bootstrap_retries=3)
