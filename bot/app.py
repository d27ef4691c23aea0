"""digitbot: handwritten digits and numbers from photos, read by a LiteRT model.

Handlers are small; `main()` builds the Application and registers them in one block.
Recognition runs in a thread pool, each user's photos in their own lane (fairness), every
outgoing call through the rate limiter, and the active model can be swapped while serving.
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
from telegram.error import TelegramError
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

from bot import metrics, replies
from bot.charts import stats_pictures
from bot.config import Settings, load_settings
from bot.fairness import UserLanes
from bot.logs import setup_logging
from bot.models import ModelRegistry, ServingModel, read_metrics
from bot.ratelimit import BotRateLimiter
from bot.request import AiohttpRequest
from bot.retrain import Retrainer, check_data, check_trainer
from bot.storage import Storage
from bot.web import WebServer, run_webhook
from model.recognize import Result, render_annotated

log = logging.getLogger(__name__)

COMMANDS = [
    BotCommand("start", "What I do"),
    BotCommand("help", "How to take a good photo"),
    BotCommand("stats", "Model accuracy, training curves, live figures"),
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
    web: WebServer | None = None  # /healthz, /metrics and the webhook, when configured


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


# The bot's Application type (no job queue is used; PTB's default type stands there).
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
        data = bytes(await tg_file.download_as_bytearray())
        model = context.model
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(svc.executor, recognize_safely, model, data)
        metrics.photo_read(result.status, result.seconds)
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
    prediction_id = svc.storage.add_prediction(
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
        svc.storage.set_reply_message(prediction_id, sent.message_id)


async def feedback(update: Update, context: BotContext) -> None:
    """✅ / 0–9 under a reading: validate, commit the label, then acknowledge."""
    svc = context.services
    query = update.callback_query
    assert query is not None  # CallbackQueryHandler
    parsed = replies.parse_feedback(query.data)
    if parsed is None:
        await query.answer("That button isn't one of mine.")
        return
    prediction_id, label = parsed
    prediction = svc.storage.prediction(prediction_id)
    message = query.message
    if (
        prediction is None
        or prediction.crop is None
        or prediction.user_id != query.from_user.id
        or message is None
        or prediction.chat_id != message.chat.id
        or prediction.message_id != message.message_id
    ):
        await query.answer("This button doesn't belong to that reading.")
        return
    if not svc.storage.add_feedback(prediction, label):  # committed before we answer
        await query.answer("Already noted — thank you!")
        return
    mark = replies.feedback_mark(prediction.reading, label)
    await query.answer(mark)
    # the mark under the reading is a courtesy: the feedback is stored and acknowledged
    with contextlib.suppress(TelegramError):  # e.g. the message is too old to edit
        if isinstance(message, Message) and message.caption is not None:
            await query.edit_message_caption(f"{message.caption}\n\n{mark}")
        elif isinstance(message, Message) and message.text is not None:
            await query.edit_message_text(f"{message.text}\n\n{mark}")
        else:
            await query.edit_message_reply_markup(None)


async def stats(update: Update, context: BotContext) -> None:
    """The model's charts with its version, accuracy, training date and live figures."""
    svc = context.services
    model = context.model
    version = svc.registry.get(model.version)
    assert version is not None, "the serving model is always a registered version"
    metrics = read_metrics(model.path)
    trained = metrics.get("created_at") or version.created_at
    if not trained:  # a model without metrics.json: the date of its file
        mtime = (model.path / "model.tflite").stat().st_mtime
        trained = datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")
    caption = replies.stats_caption(version, metrics, trained[:10], svc.storage.live_stats())
    message = message_of(update)
    with contextlib.suppress(TelegramError):  # "sending a photo…" is a courtesy too
        await context.bot.send_chat_action(message.chat_id, ChatAction.UPLOAD_PHOTO)
    pictures = await asyncio.to_thread(
        stats_pictures, model.path, svc.storage.recent_latencies()
    )
    if len(pictures) == 1:
        await message.reply_photo(pictures[0], caption=caption)
    else:
        media = [InputMediaPhoto(p, caption=caption if i == 0 else None)
                 for i, p in enumerate(pictures)]
        await message.reply_media_group(media)


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
    problem = check_trainer(svc.settings) or check_data(svc.settings.mnist_path)
    if problem:
        await message.reply_text(f"Can't retrain: {problem}")
        return
    if not svc.retrainer.start(context.bot, message.chat_id, epochs):
        await message.reply_text("A retraining is already running; I'll report when it ends.")


async def models(update: Update, context: BotContext) -> None:
    """Admins: list the model versions with their accuracy; the serving one is marked."""
    versions = context.services.registry.versions()
    await message_of(update).reply_text(replies.models_text(versions))


async def rollback(update: Update, context: BotContext) -> None:
    """Admins: serve the previous version again (hot swap, no restart)."""
    svc = context.services
    message = message_of(update)
    if svc.retrainer.busy:
        await message.reply_text("A retraining is running; roll back after it reports.")
        return
    current = context.model
    target = svc.registry.rollback_target()
    if target is None:
        await message.reply_text(f"Nothing to roll back to: v{current.version} is the first.")
        return
    loaded = await asyncio.to_thread(svc.registry.load, target)  # fails before anything changes
    svc.storage.activate(target.version)
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
    """Log the exception and tell the user something went wrong."""
    log.error("Exception while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        with contextlib.suppress(TelegramError):
            await context.bot.send_message(update.effective_chat.id, replies.SORRY)


def _too_big(size: int, limit: int) -> str:
    return replies.TOO_BIG.format(size=size / 2**20, limit=limit / 2**20)


async def post_init(application: BotApplication) -> None:
    try:
        await application.bot.set_my_commands(COMMANDS)
    except TelegramError as exc:  # the menu is a convenience; serving matters more
        log.warning("Could not register the command menu: %s", exc)
    if (web := application.bot_data.services.web) is not None:
        await web.start()


async def post_stop(application: BotApplication) -> None:
    svc = application.bot_data.services
    await svc.retrainer.stop()  # terminate a running training
    if svc.web is not None:
        await svc.web.stop()


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

    root = settings.api_root
    application = (
        ApplicationBuilder()
        .context_types(ContextTypes(context=BotContext, bot_data=BotData))
        .defaults(Defaults(do_quote=True))  # every reply quotes the message it answers
        .token(settings.bot_token.get_secret_value())
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .rate_limiter(BotRateLimiter.from_settings(settings))
        .concurrent_updates(settings.max_concurrent_updates)
        # many users at once wait for a connection (30 s) rather than fail
        .request(AiohttpRequest(settings.http_connections, pool_timeout=30))
        .get_updates_request(AiohttpRequest(1, read_timeout=5))
        .post_init(post_init)
        .post_stop(post_stop)
        .post_shutdown(post_shutdown)
        .build()
    )

    data = application.bot_data

    def swap(model: ServingModel) -> None:
        data.model = model

    data.model = serving
    data.services = svc = Services(
        settings=settings,
        storage=storage,
        registry=registry,
        retrainer=Retrainer(settings, registry, lambda: data.model, swap),
        executor=ThreadPoolExecutor(settings.recognize_threads, thread_name_prefix="recognize"),
        lanes=UserLanes(settings.user_in_flight, settings.queue_notice_after),
    )
    if settings.webhook_url or settings.metrics_port:
        svc.web = WebServer(application, settings, storage, lambda: data.model,
                            webhook=settings.webhook_url is not None)

    admins = filters.User(user_id=settings.admin_ids)  # numeric ids only
    application.add_handler(CommandHandler(["start", "help"], start))
    application.add_handler(CommandHandler("stats", stats))
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
    """Start the bot with long polling, or on its webhook when WEBHOOK_URL is set;
    SIGINT/SIGTERM stop it gracefully."""
    started = time.monotonic()
    settings = load_settings()
    setup_logging(settings.log_level, settings.bot_token.get_secret_value())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    application = build_application(settings)
    web = application.bot_data.services.web
    if settings.webhook_url and web is not None:
        asyncio.run(run_webhook(application, web, started))
        return
    log.info("Ready in %.2f s; polling %s", time.monotonic() - started, settings.api_root)
    # run_polling calls deleteWebhook first: a bot that ran on a webhook switches back
    application.run_polling(allowed_updates=Update.ALL_TYPES, bootstrap_retries=3)
