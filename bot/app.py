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

from telegram import (
    CallbackQuery,
    ForceReply,
    InputMediaPhoto,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackContext,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    ExtBot,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import corrections, i18n, metrics, replies
from bot.charts import stats_pictures
from bot.config import Settings, load_settings
from bot.fairness import UserLanes
from bot.i18n import Translator
from bot.inbox import InboxProcessor, InboxQueue
from bot.logs import setup_logging
from bot.models import ModelRegistry, ServingModel, read_metrics
from bot.ratelimit import BotRateLimiter
from bot.request import AiohttpRequest
from bot.retention import Retention
from bot.retrain import Retrainer, check_data, check_trainer
from bot.retry import CURRENT, RetryPolicy, is_transient, single_try
from bot.storage import CorrectionPrompt, Prediction, ReadingDigit, Storage
from bot.web import WebServer, run_webhook
from model.recognize import Result, render_annotated

log = logging.getLogger(__name__)

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
    web: WebServer | None = None  # /healthz, /metrics and the webhook, when configured


class BotData:
    """The application's bot_data: the services and the model serving now (swapped whole by
    /retrain and /rollback). Both are set in build_application() before any update."""

    services: Services
    model: ServingModel


# ExtBot[int]: the bot with a rate limiter (AIORateLimiter's per-call argument is an int).
class BotContext(CallbackContext[ExtBot[int], dict[Any, Any], dict[Any, Any], BotData]):
    """The handlers' context: `context.services`, `context.model` and `context.tr` (the
    language of whoever the update is from), typed."""

    _update: object = None
    _tr: Translator | None = None

    @classmethod
    def from_update(cls, update: object, application: Any) -> BotContext:
        context = super().from_update(update, application)
        context._update = update
        return context

    async def refresh_data(self) -> None:
        """PTB awaits this once it has built the context, before the first handler runs: the
        user's language is read here, in the database thread, so `tr` never blocks the loop."""
        await super().refresh_data()
        await self.load_language()

    async def load_language(self) -> None:
        """Their /language choice, else Telegram's language_code (read off the event loop)."""
        update = self._update
        user = update.effective_user if isinstance(update, Update) else None
        storage = self.services.storage
        chosen = await storage.run(storage.language, user.id) if user else None
        self._tr = i18n.translator(chosen, user.language_code if user else None)

    @property
    def tr(self) -> Translator:
        """The user's language (load_language); a context PTB did not refresh (the error
        handler's, a job's) has Telegram's language_code until it is loaded."""
        if self._tr is None:
            update = self._update
            user = update.effective_user if isinstance(update, Update) else None
            self._tr = i18n.translator(None, user.language_code if user else None)
        return self._tr

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


def is_private(update: Update) -> bool:
    chat = update.effective_chat
    return chat is not None and chat.type == ChatType.PRIVATE


def asked(update: Update, context: BotContext) -> bool:
    """Whether a message is meant for the bot: any in a private chat; in a group, one that
    mentions the bot (text or caption) or replies to one of its messages. With privacy mode on
    (BotFather's default) Telegram delivers only those and commands; with it off, or the bot an
    admin, every message comes, and GROUP_READ_ALL says whether other photos are read too."""
    message = message_of(update)
    if is_private(update):
        return True
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and (
        replied.from_user.id == context.bot.id
    ):
        return True
    me = f"@{context.bot.username}".lower()
    mentions = [*message.parse_entities([MessageEntity.MENTION]).values(),
                *message.parse_caption_entities([MessageEntity.MENTION]).values()]
    return any(mention.lower() == me for mention in mentions)


async def ignore_bots(update: Update, context: BotContext) -> None:
    """Updates from other bots, or sent via an inline bot, go no further: never answer a bot
    (no loops between bots). Anonymous admins and channels speak through a bot account with
    `sender_chat` set: they are people."""
    message = update.effective_message
    user = update.effective_user
    from_bot = user is not None and user.is_bot and (message is None or message.sender_chat is None)
    if from_bot or (message is not None and message.via_bot is not None):
        raise ApplicationHandlerStop


# --- users ------------------------------------------------------------------------------


async def start(update: Update, context: BotContext) -> None:
    """Say what the bot does and how to take a good photo."""
    admin = is_admin(update, context.services.settings)
    await message_of(update).reply_text(replies.help_text(context.tr, admin))


async def language(update: Update, context: BotContext) -> None:
    """Offer the languages as buttons (the choice is remembered per user)."""
    tr = context.tr
    await message_of(update).reply_text(
        tr(replies.CHOOSE_LANGUAGE), reply_markup=replies.language_keyboard(tr.language)
    )


async def language_chosen(update: Update, context: BotContext) -> None:
    """A language button: store the presser's choice, then confirm in that language."""
    query = update.callback_query
    assert query is not None  # CallbackQueryHandler
    code = replies.parse_language(query.data)
    if code is None:
        await answer_query(update, context.tr(replies.NOT_MINE))
        return
    storage = context.services.storage
    await storage.run(storage.set_language, query.from_user.id, code)  # committed first
    done = i18n.translator(code, query.from_user.language_code)(replies.LANGUAGE_SET)
    await answer_query(update, done)
    if is_private(update):  # in a group the menu stays for the others
        with contextlib.suppress(TelegramError):
            await query.edit_message_text(done)


async def photo(update: Update, context: BotContext) -> None:
    """Read a photo: the largest size up to 1280 px (or the smallest when all are bigger)."""
    quiet = not asked(update, context)
    if quiet and not context.services.settings.group_read_all:
        return
    sizes = message_of(update).photo
    fitting = [s for s in sizes if max(s.width, s.height) <= MAX_PHOTO_SIDE]
    chosen = max(fitting, key=lambda s: s.width * s.height) if fitting else min(
        sizes, key=lambda s: s.width * s.height
    )
    await read_image(update, context, chosen.file_id, chosen.file_size, quiet=quiet)


async def document(update: Update, context: BotContext) -> None:
    """Read an image sent as a file; explain politely when it isn't one."""
    message = message_of(update)
    doc = message.document
    assert doc is not None  # filters.Document
    quiet = not asked(update, context)
    if quiet and not context.services.settings.group_read_all:
        return
    mime = doc.mime_type or mimetypes.guess_type(doc.file_name or "")[0] or ""
    if mime.startswith("image/"):
        await read_image(update, context, doc.file_id, doc.file_size, quiet=quiet)
    elif quiet:
        return  # a file shared in a group, not sent to the bot
    elif mime == "application/pdf" or (doc.file_name or "").lower().endswith(".pdf"):
        await message.reply_text(context.tr(replies.PDF))
    else:
        await message.reply_text(context.tr(replies.NOT_AN_IMAGE))


async def read_image(
    update: Update, context: BotContext, file_id: str, size: int | None, quiet: bool = False
) -> None:
    """Download, recognize off the event loop, store, reply (in the user's own lane).
    `quiet`: a group photo not sent to the bot; answered only when it holds digits."""
    svc = context.services
    message = message_of(update)
    limit = svc.settings.max_file_bytes
    if size and size > limit:
        if not quiet:
            await message.reply_text(replies.too_big(context.tr, size, limit))
        return

    async def on_queue(waiting: int) -> None:
        if quiet:
            return
        with contextlib.suppress(TelegramError):  # about the burst, not this photo: no quote
            await message.reply_text(replies.queued(context.tr, waiting), do_quote=False)

    async with svc.lanes.turn(sender_id(update), on_queue):
        tg_file = await context.bot.get_file(file_id)
        if tg_file.file_size and tg_file.file_size > limit:
            if not quiet:
                await message.reply_text(replies.too_big(context.tr, tg_file.file_size, limit))
            return
        # the download bypasses the Bot API methods (and so the rate limiter): retried here
        data = bytes(await svc.retry.call(tg_file.download_as_bytearray, "download"))
        model = context.model
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(svc.executor, recognize_safely, model, data)
        metrics.photo_read(result.status, result.seconds)
        await reply_reading(update, context, model, data, result, quiet)


def recognize_safely(model: ServingModel, data: bytes) -> Result:
    """recognize() promises not to raise on bad input; if it ever does, the user still gets
    a clear answer and the traceback goes to the log."""
    try:
        return model.recognizer.recognize(data)
    except Exception:
        log.exception("The recognizer failed on a %d-byte file", len(data))
        return Result(status="error")  # no text: the bot's own UNREADABLE answer


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
    quiet: bool = False,
) -> None:
    """Store the prediction, then answer: text, or the annotated photo for numbers and doubts.
    Under a single digit: ✅ and 0–9; under a number (its digits kept): ✅ and ✏️ Correct."""
    svc = context.services
    tr = context.tr
    message = message_of(update)
    if quiet and result.status != "ok":
        return  # a group photo not sent to the bot, with no digits: not the bot's business
    threshold = svc.settings.doubt_threshold
    single = result.status == "ok" and len(result.digits) == 1
    number = result.status == "ok" and 1 < len(result.digits) <= corrections.MAX_DIGITS
    storage = svc.storage
    prediction_id = await storage.run(
        storage.add_prediction,
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
    if number:
        await storage.run(storage.add_reading_digits,
                          prediction_id, [(d.line, d.digit, d.crop) for d in result.digits])
    if result.status == "no_digit":
        await message.reply_text(replies.no_digit(tr))
        return
    if result.status != "ok":
        await message.reply_text(replies.image_error(tr, result))
        return

    text = replies.reading_text(tr, result, threshold, ask=single or number)
    keyboard = None
    if single:
        keyboard = replies.feedback_keyboard(prediction_id, result.digits[0].digit)
    elif number:
        keyboard = replies.number_keyboard(tr, prediction_id)
    picture = None
    if len(result.digits) > 1 or replies.is_doubtful(result, threshold):
        loop = asyncio.get_running_loop()
        picture = await loop.run_in_executor(svc.executor, annotate_safely, data, result)
    sent: Message
    if picture is not None:
        sent = await message.reply_photo(picture, caption=text, reply_markup=keyboard)
    else:
        sent = await message.reply_text(text, reply_markup=keyboard)
    if single or number:
        await storage.run(storage.set_reply_message, prediction_id, sent.message_id)


def owns_reading(prediction: Prediction | None, query: CallbackQuery) -> bool:
    """The button is under the reading it names, pressed by whoever sent the photo."""
    message = query.message
    return (
        prediction is not None
        and prediction.user_id == query.from_user.id
        and message is not None
        and prediction.chat_id == message.chat.id
        and prediction.message_id == message.message_id
    )


async def mark_reading(query: CallbackQuery, mark: str) -> None:
    """Add the mark under the reading and drop its buttons: a courtesy, since the feedback is
    already stored and acknowledged."""
    message = query.message
    with contextlib.suppress(TelegramError):  # e.g. the message is too old to edit
        if isinstance(message, Message) and message.caption is not None:
            await query.edit_message_caption(f"{message.caption}\n\n{mark}")
        elif isinstance(message, Message) and message.text is not None:
            await query.edit_message_text(f"{message.text}\n\n{mark}")
        else:
            await query.edit_message_reply_markup(None)


async def feedback(update: Update, context: BotContext) -> None:
    """✅ / 0–9 under a single digit: validate, commit the label, then acknowledge."""
    storage = context.services.storage
    tr = context.tr
    query = update.callback_query
    assert query is not None  # CallbackQueryHandler
    parsed = replies.parse_feedback(query.data)
    if parsed is None:
        await answer_query(update, tr(replies.NOT_MINE))
        return
    prediction_id, label = parsed
    prediction = await storage.run(storage.prediction, prediction_id)
    if prediction is None or prediction.crop is None or not owns_reading(prediction, query):
        await answer_query(update, tr(replies.NOT_YOURS))
        return
    if not await storage.run(storage.add_feedback, prediction, label):  # committed first
        await answer_query(update, tr(replies.ALREADY_NOTED))
        return
    mark = replies.feedback_mark(tr, prediction.reading, label)
    await answer_query(update, mark)
    await mark_reading(query, mark)


async def number_feedback(update: Update, context: BotContext) -> None:
    """✅ / ✏️ Correct under a number: confirm every digit, or ask for the right number."""
    storage = context.services.storage
    tr = context.tr
    query = update.callback_query
    assert query is not None  # CallbackQueryHandler
    parsed = replies.parse_number_button(query.data)
    if parsed is None:
        await answer_query(update, tr(replies.NOT_MINE))
        return
    prediction_id, action = parsed
    prediction = await storage.run(storage.prediction, prediction_id)
    digits = await storage.run(storage.reading_digits, prediction_id) if prediction else []
    if prediction is None or not digits or not owns_reading(prediction, query):
        await answer_query(update, tr(replies.NOT_YOURS))
        return
    if await storage.run(storage.has_feedback, prediction_id):
        await answer_query(update, tr(replies.ALREADY_NOTED))
        return
    if action == "ok":
        labels = [d.digit for d in digits]
        if not await storage.run(storage.add_number_feedback, prediction, labels):
            await answer_query(update, tr(replies.ALREADY_NOTED))
            return
        mark = tr(replies.CONFIRMED)
        await answer_query(update, mark)
        await mark_reading(query, mark)
        return
    await answer_query(update, tr(replies.CORRECTION_ASKED))
    message = query.message
    photo_message = message.reply_to_message if isinstance(message, Message) else None
    assert message is not None  # owns_reading
    # Replying to the user's photo makes the ForceReply selective for them in a group.
    await ask_for_number(context, prediction, digits,
                         (photo_message or message).message_id, message.chat.id)


async def ask_for_number(
    context: BotContext, prediction: Prediction, digits: list[ReadingDigit], reply_to: int,
    chat_id: int, text: str | None = None,
) -> None:
    """Send the question (ForceReply) and remember it: the answer may reply to it, or come as
    the user's next message in the chat within PROMPT_TTL_S."""
    tr = context.tr
    sent = await context.bot.send_message(
        chat_id,
        text or replies.correction_prompt(tr, line_counts(digits)),
        reply_markup=ForceReply(
            selective=True, input_field_placeholder=prediction.reading.replace("\n", " ")[:64]
        ),
        reply_parameters=ReplyParameters(reply_to, allow_sending_without_reply=True),
    )
    storage = context.services.storage
    await storage.run(
        storage.add_correction_prompt, chat_id, sent.message_id, prediction.user_id,
        prediction.id, expired_before=time.time() - corrections.PROMPT_TTL_S,
    )


def line_counts(digits: list[ReadingDigit]) -> list[int]:
    """Digits per line of a reading: [2, 3] for "12\n345"."""
    lines = sorted({d.line for d in digits})
    return [sum(1 for d in digits if d.line == line) for line in lines]


async def open_prompt(update: Update, context: BotContext) -> CorrectionPrompt | None | bool:
    """The question a text message answers: the one it replies to, else the sender's latest
    in this chat (in a group only when the text is a number: chatter is not an answer).
    None: no question; False: it replies to a question that has expired."""
    storage = context.services.storage
    message = message_of(update)
    user_id = sender_id(update)
    since = time.time() - corrections.PROMPT_TTL_S
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and (
        replied.from_user.id == context.bot.id
    ):
        prompt = await storage.run(storage.correction_prompt, message.chat_id,
                                   replied.message_id)
        if prompt is not None:
            if prompt.user_id != user_id:
                return None  # someone else's question
            return prompt if prompt.created_at >= since else False
    if not is_private(update) and not corrections.looks_like_a_number(message.text or ""):
        return None
    return await storage.run(storage.latest_correction_prompt, user_id, message.chat_id, since)


async def text_message(update: Update, context: BotContext) -> None:
    """Text: the right number after ✏️ Correct; otherwise, in a private chat, what the bot
    reads (group chatter is left alone)."""
    storage = context.services.storage
    tr = context.tr
    message = message_of(update)
    prompt = await open_prompt(update, context)
    if prompt is False:
        await message.reply_text(tr(replies.CORRECTION_EXPIRED))
        return
    prediction = digits = None
    if isinstance(prompt, CorrectionPrompt):  # its reading may have been deleted since
        prediction = await storage.run(storage.prediction, prompt.prediction_id)
        digits = await storage.run(storage.reading_digits, prompt.prediction_id)
    if prediction is None or not digits:
        if is_private(update):
            await message.reply_text(tr(replies.TEXT_ONLY))
        return
    if await storage.run(storage.has_feedback, prediction.id):
        await message.reply_text(tr(replies.ALREADY_NOTED))
        return
    expected = line_counts(digits)
    labels = corrections.labels_for(message.text or "", expected)
    if labels is None:  # explain, and ask again (a reply to this one works as well)
        got = [len(line) for line in corrections.digits_per_line(message.text or "")]
        await ask_for_number(context, prediction, digits, message.message_id, message.chat_id,
                             replies.correction_retry(tr, expected, got))
        return
    if not await storage.run(storage.add_number_feedback, prediction, labels):  # committed
        await message.reply_text(tr(replies.ALREADY_NOTED))
        return
    typed, start = [], 0
    for count in expected:
        typed.append("".join(map(str, labels[start : start + count])))
        start += count
    await message.reply_text(replies.correction_thanks(tr, prediction.reading, "\n".join(typed)))
    if prediction.message_id is not None:  # the reading's buttons are done with
        with contextlib.suppress(TelegramError):
            await context.bot.edit_message_reply_markup(
                prediction.chat_id, prediction.message_id, reply_markup=None
            )


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
    tr = context.tr
    live = await svc.storage.run(svc.storage.live_stats)
    caption = replies.stats_caption(tr, version, metrics, trained[:10], live)
    message = message_of(update)
    with contextlib.suppress(TelegramError):  # "sending a photo…" is a courtesy too
        await context.bot.send_chat_action(message.chat_id, ChatAction.UPLOAD_PHOTO)
    latencies = await svc.storage.run(svc.storage.recent_latencies)
    pictures = await asyncio.to_thread(stats_pictures, model.path, latencies, tr)
    if len(pictures) == 1:
        await message.reply_photo(pictures[0], caption=caption)
    else:
        media = [InputMediaPhoto(p, caption=caption if i == 0 else None)
                 for i, p in enumerate(pictures)]
        await message.reply_media_group(media)


async def forget(update: Update, context: BotContext) -> None:
    """Delete everything stored about the sender and say how many records went."""
    storage = context.services.storage
    gone = await storage.run(storage.forget_user, sender_id(update))
    await message_of(update).reply_text(replies.forgotten(context.tr, gone))


async def unknown_command(update: Update, context: BotContext) -> None:
    """Point unknown commands at /help; in a group only those named @thisbot (the others may
    be another bot's)."""
    message = message_of(update)
    command = (message.text or "").split()[0][:64]
    target = command.partition("@")[2].lower()
    if (target and target != context.bot.username.lower()) or (
        not target and not is_private(update)
    ):
        return
    await message.reply_text(replies.unknown_command(context.tr, command))


async def other(update: Update, context: BotContext) -> None:
    """Stickers, voice, …: explain what the bot reads."""
    await message_of(update).reply_text(context.tr(replies.TEXT_ONLY))


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
    await message.reply_text(context.tr(replies.ADMINS_ONLY).format(command=command[:33]))


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
        try:
            await context.load_language()  # PTB does not refresh an error handler's context
            sorry = context.tr(replies.SORRY)
        except Exception:  # e.g. the database is what failed: English will do
            sorry = replies.SORRY
        with contextlib.suppress(TelegramError):
            await context.bot.send_message(update.effective_chat.id, sorry)


async def post_init(application: BotApplication) -> None:
    """The inbox's backlog from before the start, then the command menu (English for everyone,
    each language's own for its speakers), then the web server."""
    # before polling or the webhook take new updates: the restart's unfinished ones wait again
    await application.bot_data.services.inbox.start()
    bot = application.bot
    try:
        # one try each (Telegram keeps the menus of the last start): an outage at start must
        # not hold up serving for a retry deadline per language
        with single_try():
            await bot.set_my_commands(replies.bot_commands(i18n.translator()))
            for language in i18n.LANGUAGES:
                if language != i18n.DEFAULT:
                    commands = replies.bot_commands(i18n.translator(language))
                    await bot.set_my_commands(commands, language_code=language)
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
        .rate_limiter(BotRateLimiter.from_settings(settings, retry))
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
    inbox.on_stop = retry.stop  # what fails from now on waits in the inbox for the next start
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
        retry=retry,
        inbox=inbox,
        retention=Retention(storage, settings),
    )
    if settings.webhook_url or settings.metrics_port:
        svc.web = WebServer(application, settings, storage, inbox, lambda: data.model,
                            webhook=settings.webhook_url is not None)
    jobs = application.job_queue
    assert jobs is not None  # python-telegram-bot[job-queue]
    # updates parked after their retries, when their wait is over
    jobs.run_repeating(inbox.job, settings.inbox_retry_after_s, name="inbox")
    jobs.run_repeating(svc.retention.job, settings.retention_interval_s, first=60,
                       name="retention")

    admins = filters.User(user_id=settings.admin_ids)  # numeric ids only
    application.add_handler(TypeHandler(Update, ignore_bots), group=-1)  # before all others
    application.add_handler(CommandHandler(["start", "help"], start))
    application.add_handler(CommandHandler("stats", stats))
    application.add_handler(CommandHandler("language", language))
    application.add_handler(CommandHandler("forget", forget))
    application.add_handler(CommandHandler("retrain", retrain, filters=admins))
    application.add_handler(CommandHandler("models", models, filters=admins))
    application.add_handler(CommandHandler("rollback", rollback, filters=admins))
    application.add_handler(CommandHandler(ADMIN_COMMANDS, admins_only))  # everyone else
    application.add_handler(CallbackQueryHandler(language_chosen, pattern=r"^lang:"))
    application.add_handler(CallbackQueryHandler(number_feedback, pattern=r"^nb:"))
    application.add_handler(CallbackQueryHandler(feedback))  # fb:…, and refuses anything else
    new = filters.UpdateType.MESSAGE  # not edits or channel posts
    application.add_handler(MessageHandler(new & filters.PHOTO, photo))
    application.add_handler(MessageHandler(new & filters.Document.ALL, document))
    application.add_handler(MessageHandler(new & filters.COMMAND, unknown_command))
    application.add_handler(MessageHandler(new & filters.TEXT, text_message))
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
