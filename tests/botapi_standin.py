"""A local Telegram Bot API stand-in: an aiohttp server that speaks the Bot API over HTTP.

The real python-telegram-bot bot runs against it unmodified: point ``TELEGRAM_API_URL`` at
``standin.url`` (the bot then uses ``<url>/bot`` and ``<url>/file/bot``). The stand-in plays the
users (it queues their updates for ``getUpdates``), records every call the bot makes, and injects
the faults Telegram and networks produce.

Served like Telegram:
    POST/GET ``/bot<token>/<method>``  JSON, form-encoded or multipart bodies (files as parts,
                                        ``attach://<name>`` references in ``media``)
    GET ``/file/bot<token>/<file_path>``  file download (after ``getFile``)
    answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
    "description": "...", "parameters": {"retry_after": N}}``; a wrong token gets 401.
Methods: getMe, getUpdates (long polling; offset confirms; limit; timeout; allowed_updates; a
second concurrent poll ends the first with 409 like Telegram), deleteWebhook, getWebhookInfo,
setMyCommands, getMyCommands, deleteMyCommands, sendMessage, sendPhoto, sendDocument,
sendMediaGroup, editMessageText, editMessageCaption, editMessageReplyMarkup,
answerCallbackQuery, getFile, sendChatAction, deleteMessage, close, logOut; any other method is
recorded in ``unknown_methods`` and answered ``{"ok": true, "result": true}``.
Telegram's checks that catch real bot bugs are kept: empty or > 4096-char text, > 1024-char
caption, callback_data over 64 bytes, an upload that is not a decodable image for sendPhoto,
"message is not modified" on an edit that changes nothing, an unknown or twice-answered
callback query, a chat the bot has never seen, a getFile over 20 MB, broken HTML parse_mode and
unescaped reserved characters in MarkdownV2.

Test-side API (no pytest plugin needed: use it from ``async def`` code on the running loop, or
in a background thread with its own loop from sync code such as tests and bench scripts)::

    async with BotApiStandIn() as api:            # or: api = BotApiStandIn(); await api.start()
        env = {"TELEGRAM_API_URL": api.url, "BOT_TOKEN": api.token}
        mid = api.send_photo(user_id, jpeg_bytes)  # queue an update; returns the message id
        call = await api.wait_reply(user_id, mid, timeout=10)   # the bot's reply (a Call)
        call.method, call.params, call.files, call.text, call.time

    with BotApiStandIn().in_thread() as api:       # sync code: own loop in a daemon thread
        api.send_text(42, "/start")
        call = api.run(api.wait_reply(42, mid))    # run any coroutine on the stand-in's loop

Users (the chat is private, chat id == user id): ``add_user(id, first_name=, username=)``;
``send_text`` / ``send_command`` (with a bot_command entity) ; ``send_photo(user, bytes)``
(the image gets a file_id; the update carries PhotoSizes of increasing size, thumbnails made with
Pillow) ; ``send_document(user, bytes, file_name, mime_type)`` ; ``send_sticker(user)`` ;
``press(user, message_id, data)`` a callback query on a bot message (any message id, or a
message of another chat, may be given to forge one) -> the callback query id.
``register_file(bytes)`` -> file_id for files the bot may send by id.

Recording: ``calls`` (list of :class:`Call`: method, params decoded to Python values, uploaded
files as :class:`Upload` with bytes, monotonic ``time``, ``status`` answered (0 while in
flight), ``result``, ``fault``; properties ``ok``, ``chat_id``, ``text`` (text or caption),
``reply_to`` (reply_to_message_id or reply_parameters.message_id), ``photo_bytes``),
``calls_to(*methods, ok_only=True)``, ``messages_to(chat_id)`` (delivered send* calls),
``replies_to(chat_id, message_id)``, ``answered_callbacks`` (query id -> the answering Call),
``bot_messages`` / ``user_messages`` ((chat, message id) -> Message dict), ``commands``,
``unknown_methods``, ``pending_updates`` (queued, not yet confirmed by an offset),
``file_bytes(file_id)``.
Waiting (coroutines; from sync code wrap them in ``api.run(...)``): ``wait_for(predicate,
timeout)`` -> the first delivered call (past or future) matching; ``wait_reply(chat_id,
message_id)``; ``wait_message(chat_id, predicate=None, after=t)`` (send* and edits);
``wait_callback_answer(query_id)``; ``wait_polling(after=t)`` a getUpdates received after
monotonic time ``t`` (the bot is up). They raise TimeoutError listing the last calls.

Faults: ``fail(method, status=429|500|502|..., retry_after=None, times=1)`` (429 defaults to
retry_after=1); ``delay(method, seconds, times=1)``; method ``"download"`` is the file endpoint,
``"*"`` any method; ``clear_faults()``. ``await go_down()`` / ``await come_back()``: the
listening socket and every open connection are closed (connections are refused), then the
server listens again on the same port; updates queued meanwhile are kept and delivered after;
``await outage(seconds)`` does both.
Rates: ``max_rate(window=1.0, chat_id=None)`` the most delivered messages in any window,
``rate(chat_id=None)`` mean messages per second over the recorded span.

Webhook (see the "webhook" section): ``setWebhook`` / ``deleteWebhook`` / ``getWebhookInfo``
are kept like Telegram (``webhook``: url, secret_token, allowed_updates); while a webhook is
set, getUpdates gets 409 and each queued update is POSTed to ``webhook_target`` (the bot's
local address, standing in for the reverse proxy behind the registered https URL) with the
``X-Telegram-Bot-Api-Secret-Token`` header (``webhook_secret_override`` sends another one, or
none with ""); every POST is in ``webhook_deliveries``; a refused one stays pending and is
retried every ``WEBHOOK_RETRY_S``, as at Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import io
import itertools
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, TypeVar

from aiohttp import ClientError, ClientSession, ClientTimeout, web

DEFAULT_TOKEN = "123456789:AAStandInTokenForTestsOnly_abcdefghij"
SEND_METHODS = frozenset({"sendmessage", "sendphoto", "senddocument", "sendmediagroup",
                          "sendsticker", "sendanimation", "sendvideo", "sendaudio"})
EDIT_METHODS = frozenset({"editmessagetext", "editmessagecaption", "editmessagereplymarkup",
                          "editmessagemedia"})
# Values PTB sends as plain strings; every other form field is JSON (ints, bools, objects).
TEXT_FIELDS = frozenset({"text", "caption", "data", "callback_query_id", "file_id",
                         "parse_mode", "action", "url", "inline_message_id", "photo",
                         "document", "sticker", "name", "description", "short_description",
                         "language_code", "emoji", "query", "secret_token",
                         "business_connection_id"})
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_GETFILE_BYTES = 20 * 1024 * 1024
PHOTO_SIDES = (90, 320, 800)  # thumbnail sizes Telegram produces below the full photo
WEBHOOK_RETRY_S = 1.0  # a refused webhook delivery is tried again after this long
MD2_RESERVED = set("_*[]()~`>#+-=|{}.!")
HTML_TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
                       "tg-spoiler", "a", "code", "pre", "blockquote", "tg-emoji"})

T = TypeVar("T")


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status, description and optional parameters."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status,
                                "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class Upload:
    """A file part of a multipart request."""

    name: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class Call:
    """One request the bot made. ``status`` is what the stand-in answered (0 while running)."""

    method: str
    params: dict[str, Any]
    files: dict[str, Upload]
    time: float
    status: int = 0
    result: Any = None
    fault: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def chat_id(self) -> int | None:
        chat = self.params.get("chat_id")
        return chat if isinstance(chat, int) else None

    @property
    def text(self) -> str:
        """The text or caption sent (as the bot wrote it, markup included)."""
        value = self.params.get("text", self.params.get("caption"))
        if value is None and isinstance(self.params.get("media"), list):
            value = "\n".join(str(m.get("caption", "")) for m in self.params["media"])
        return "" if value is None else str(value)

    @property
    def reply_to(self) -> int | None:
        """The message id this call replies to (reply_to_message_id or reply_parameters)."""
        reply = self.params.get("reply_parameters")
        if isinstance(reply, dict) and "message_id" in reply:
            return int(reply["message_id"])
        mid = self.params.get("reply_to_message_id")
        return int(mid) if mid is not None else None

    @property
    def photo_bytes(self) -> list[bytes]:
        """Bytes of each photo this call uploaded (sendPhoto or sendMediaGroup)."""
        return [f.data for f in self.files.values()]

    def __repr__(self) -> str:
        text = self.text[:60].replace("\n", " ")
        return (f"Call({self.method} chat={self.params.get('chat_id')} status={self.status} "
                f"reply_to={self.reply_to} text={text!r} files={list(self.files)})")


@dataclass
class WebhookDelivery:
    """One POST of an update to the bot's webhook; ``status`` 0: no HTTP answer."""

    update_id: int
    time: float
    wall_time: float
    status: int = 0
    error: str = ""


@dataclass
class _Fault:
    method: str
    status: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass
class _Delay:
    method: str
    seconds: float
    remaining: int


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    path: str
    data: bytes
    width: int = 0
    height: int = 0
    sizes: list[dict[str, Any]] = field(default_factory=list)


def _decode_field(name: str, value: str) -> Any:
    if name in TEXT_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _plain_html(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text))


class _HtmlCheck(HTMLParser):
    """Telegram's HTML parse mode: known tags only, properly nested."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_TAGS:
            self.error = self.error or f"Unsupported start tag \"{tag}\""
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.error = self.error or f"Unexpected end tag \"{tag}\""


def most_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events within any ``window`` seconds (Telegram's limits are per second)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _message_text(params: dict[str, Any], too_long: str) -> str:
    """The text of a send or an edit, checked as Telegram checks it."""
    text = str(params.get("text") or "")
    _check_markup(text, params.get("parse_mode"))
    plain = _plain_html(text) if str(params.get("parse_mode")).lower() == "html" else text
    if not plain.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if len(plain) > MAX_TEXT:
        raise ApiError(400, f"Bad Request: {too_long}")
    return plain


def _check_markup(text: str, parse_mode: str | None) -> None:
    """Raise the 400 Telegram gives for text its parser rejects."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        if re.search(r"<(?![a-zA-Z/])", text):
            raise ApiError(400, "Bad Request: can't parse entities: Unsupported start tag")
        checker = _HtmlCheck()
        checker.feed(text)
        checker.close()
        error = checker.error or (f"Can't find end tag corresponding to start tag "
                                  f"\"{checker.stack[-1]}\"" if checker.stack else None)
        if error:
            raise ApiError(400, f"Bad Request: can't parse entities: {error}")
    elif mode == "markdownv2":
        stripped = re.sub(r"\\.", "", text, flags=re.S)
        stripped = re.sub(r"```.*?```|`[^`]*`", "", stripped, flags=re.S)
        stripped = re.sub(r"\]\([^)]*\)", "]", stripped)
        for char in ".!-=+#|{}":
            if char in stripped:
                raise ApiError(400, f"Bad Request: can't parse entities: Character '{char}' is "
                                    "reserved and must be escaped with the preceding '\\'")


def _image_size(data: bytes) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None


def _thumbnail(data: bytes, side: int) -> tuple[bytes, int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        img.thumbnail((side, side))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=80)
        return out.getvalue(), img.width, img.height


class BotApiStandIn:
    """The Bot API server plus the users it plays. See the module docstring."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, host: str = "127.0.0.1", port: int = 0,
                 bot_username: str = "digitbot_test_bot", strict_chats: bool = True,
                 thumbnails: bool = True) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.strict_chats = strict_chats  # sending to a chat never seen -> "chat not found"
        self.thumbnails = thumbnails  # False: reuse the photo bytes for every PhotoSize (faster)
        self.bot_user: dict[str, Any] = {
            "id": int(token.split(":", 1)[0]), "is_bot": True, "first_name": "DigitBot",
            "username": bot_username, "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False,
        }
        self.calls: list[Call] = []
        self.unknown_methods: list[str] = []
        self.commands: list[dict[str, Any]] = []
        self.users: dict[int, dict[str, Any]] = {}
        self.bot_messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.user_messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.answered_callbacks: dict[str, Call] = {}
        self.is_down = False
        self._lock = threading.RLock()
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(10_000)
        self._file_ids = itertools.count(1)
        self._callback_ids = itertools.count(7_000_000)
        self._next_message_id: dict[int, int] = {}
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._pending_callbacks: set[str] = set()
        self._faults: list[_Fault] = []
        self._delays: list[_Delay] = []
        self._poll_generation = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.webhook: dict[str, Any] | None = None  # see the webhook section
        self.webhook_target: str | None = None
        self.webhook_secret_override: str | None = None
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._webhook_in_flight: set[int] = set()
        self._webhook_session: ClientSession | None = None

    # ----------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        """The Bot API root to put in TELEGRAM_API_URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    async def start(self) -> BotApiStandIn:
        """Listen on host:port (a free port when 0) in the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        await self._listen()
        return self

    async def stop(self) -> None:
        self.webhook = None
        if self._webhook_session is not None:
            await self._webhook_session.close()
        await self._close_server()
        self._wake()

    async def __aenter__(self) -> BotApiStandIn:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _listen(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_download)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.2,
                               handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        if self.port == 0:
            self.port = runner.addresses[0][1]
        self.is_down = False

    async def _close_server(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def go_down(self) -> None:
        """Refuse connections and drop open ones (updates queued meanwhile are kept)."""
        self.is_down = True
        await self._close_server()

    async def come_back(self) -> None:
        """Listen again on the same port."""
        await self._listen()

    async def outage(self, seconds: float) -> None:
        await self.go_down()
        await asyncio.sleep(seconds)
        await self.come_back()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[BotApiStandIn]:
        """Run the server on its own event loop in a daemon thread (for sync code)."""
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop_thread()

    def start_in_thread(self) -> BotApiStandIn:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=serve, name="botapi-standin", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        if self._thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run a coroutine of this stand-in (wait_for, go_down, ...) from another thread."""
        assert self._loop is not None, "start the stand-in first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    def _wake(self) -> None:
        """Wake every waiter (long polls, wait_for); callable from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._broadcast()
        else:
            loop.call_soon_threadsafe(self._broadcast)

    def _broadcast(self) -> None:
        if self._changed is not None:
            self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, timeout: float) -> None:
        assert self._changed is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(timeout, 0))

    # ----------------------------------------------------------------- faults
    def fail(self, method: str, status: int = 429, retry_after: int | None = None,
             times: int = 1, description: str | None = None) -> None:
        """Answer the next ``times`` calls of ``method`` ("*" = any) with an error."""
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after}",
                400: "Bad Request: injected fault", 403: "Forbidden: bot was blocked by the user",
                500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            }.get(status, f"Error {status}")
        with self._lock:
            self._faults.append(_Fault(method.lower(), status, description, retry_after, times))

    def delay(self, method: str, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` calls of ``method`` ("download" = file endpoint) ``seconds``."""
        with self._lock:
            self._delays.append(_Delay(method.lower(), seconds, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def _take(self, items: list[Any], method: str) -> Any:
        with self._lock:
            for item in items:
                if item.remaining > 0 and item.method in (method, "*"):
                    item.remaining -= 1
                    return item
        return None

    # ----------------------------------------------------------------- users
    def add_user(self, user_id: int, first_name: str | None = None, username: str | None = None,
                 last_name: str | None = None, language_code: str = "en") -> dict[str, Any]:
        """Register (or update) a user; helpers auto-register unknown ids."""
        user: dict[str, Any] = {"id": user_id, "is_bot": False,
                                "first_name": first_name or f"User{user_id}",
                                "language_code": language_code}
        if username:
            user["username"] = username
        if last_name:
            user["last_name"] = last_name
        with self._lock:
            self.users[user_id] = user
        return user

    def _user(self, user_id: int) -> dict[str, Any]:
        return self.users.get(user_id) or self.add_user(user_id)

    def _chat(self, chat_id: int) -> dict[str, Any]:
        user = self.users.get(chat_id)
        chat: dict[str, Any] = {"id": chat_id, "type": "private" if chat_id > 0 else "group"}
        if user:
            chat["first_name"] = user["first_name"]
            if "username" in user:
                chat["username"] = user["username"]
        elif chat_id < 0:
            chat["title"] = f"Group {chat_id}"
        return chat

    def _message_id(self, chat_id: int) -> int:
        with self._lock:
            mid = self._next_message_id.get(chat_id, 1)
            self._next_message_id[chat_id] = mid + 1
        return mid

    def _queue(self, kind: str, payload: dict[str, Any]) -> int:
        with self._lock:
            update_id = next(self._update_ids)
            self._updates.append({"update_id": update_id, kind: payload})
        self._wake()
        self._deliver_soon()  # when a webhook is set
        return update_id

    def _user_message(self, user_id: int, **fields: Any) -> int:
        user = self._user(user_id)
        mid = self._message_id(user_id)
        message = {"message_id": mid, "date": int(time.time()), "chat": self._chat(user_id),
                   "from": user, **fields}
        with self._lock:
            self.user_messages[(user_id, mid)] = message
        self._queue("message", message)
        return mid

    def send_text(self, user_id: int, text: str) -> int:
        """A text message from the user; a leading /command gets its bot_command entity."""
        fields: dict[str, Any] = {"text": text}
        match = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
        if match:
            fields["entities"] = [{"type": "bot_command", "offset": 0,
                                   "length": len(match.group(0).encode("utf-16-le")) // 2}]
        return self._user_message(user_id, **fields)

    def send_command(self, user_id: int, command: str, args: str = "") -> int:
        """``/command args`` from the user (command given with or without the slash)."""
        text = "/" + command.lstrip("/") + (f" {args}" if args else "")
        return self.send_text(user_id, text)

    def register_file(self, data: bytes, *, kind: str = "documents", suffix: str = ".bin",
                      width: int = 0, height: int = 0) -> str:
        """Store bytes as a Telegram file; returns its file_id (getFile + download serve it)."""
        with self._lock:
            n = next(self._file_ids)
            stored = _StoredFile(file_id=f"FILE{n:06d}-{kind}", file_unique_id=f"U{n:06d}",
                                 path=f"{kind}/file_{n}{suffix}", data=data,
                                 width=width, height=height)
            self._files[stored.file_id] = stored
            self._files_by_path[stored.path] = stored
        return stored.file_id

    def file_bytes(self, file_id: str) -> bytes:
        return self._files[file_id].data

    def _photo_sizes(self, data: bytes, width: int | None = None,
                     height: int | None = None) -> list[dict[str, Any]]:
        """PhotoSizes of increasing size like Telegram's; the largest is the bytes given."""
        size = _image_size(data)
        full_w, full_h = size if size else (width or 1, height or 1)
        variants: list[tuple[bytes, int, int]] = []
        if size:
            for side in PHOTO_SIDES:
                if side < max(full_w, full_h):
                    if self.thumbnails:
                        variants.append(_thumbnail(data, side))
                    else:
                        scale = side / max(full_w, full_h)
                        variants.append((data, max(1, round(full_w * scale)),
                                         max(1, round(full_h * scale))))
        variants.append((data, full_w, full_h))
        sizes = []
        for blob, w, h in variants:
            file_id = self.register_file(blob, kind="photos", suffix=".jpg", width=w, height=h)
            stored = self._files[file_id]
            sizes.append({"file_id": file_id, "file_unique_id": stored.file_unique_id,
                          "width": w, "height": h, "file_size": len(blob)})
        self._files[sizes[-1]["file_id"]].sizes = sizes
        return sizes

    def send_photo(self, user_id: int, image: bytes, caption: str | None = None, *,
                   width: int | None = None, height: int | None = None,
                   media_group_id: str | None = None) -> int:
        """A photo from the user (Telegram's PhotoSize list); returns the message id."""
        fields: dict[str, Any] = {"photo": self._photo_sizes(image, width, height)}
        if caption is not None:
            fields["caption"] = caption
        if media_group_id:
            fields["media_group_id"] = media_group_id
        return self._user_message(user_id, **fields)

    def send_document(self, user_id: int, data: bytes, file_name: str = "file.bin",
                      mime_type: str | None = "application/octet-stream",
                      caption: str | None = None) -> int:
        """A file sent as a document (any bytes, name and mime type)."""
        suffix = "." + file_name.rsplit(".", 1)[-1] if "." in file_name else ""
        file_id = self.register_file(data, kind="documents", suffix=suffix)
        document: dict[str, Any] = {"file_id": file_id,
                                    "file_unique_id": self._files[file_id].file_unique_id,
                                    "file_name": file_name, "file_size": len(data)}
        if mime_type:
            document["mime_type"] = mime_type
        fields: dict[str, Any] = {"document": document}
        if caption is not None:
            fields["caption"] = caption
        return self._user_message(user_id, **fields)

    def send_sticker(self, user_id: int, emoji: str = "👍") -> int:
        """A regular (static webp) sticker."""
        file_id = self.register_file(b"RIFF\x00\x00\x00\x00WEBPVP8 ", kind="stickers",
                                     suffix=".webp")
        sticker = {"file_id": file_id, "file_unique_id": self._files[file_id].file_unique_id,
                   "type": "regular", "width": 512, "height": 512, "is_animated": False,
                   "is_video": False, "emoji": emoji, "file_size": 14}
        return self._user_message(user_id, sticker=sticker)

    def press(self, user_id: int, message_id: int, data: str, *,
              chat_id: int | None = None) -> str:
        """The user presses an inline button with ``data`` on bot message ``message_id``.

        ``chat_id`` defaults to the user's chat; the message need not exist (forgeries).
        Returns the callback query id the bot must answer.
        """
        chat_id = user_id if chat_id is None else chat_id
        message = self.bot_messages.get((chat_id, message_id)) or {
            "message_id": message_id, "date": int(time.time()), "chat": self._chat(chat_id),
            "from": self.bot_user, "text": "?"}
        query_id = str(next(self._callback_ids))
        with self._lock:
            self._pending_callbacks.add(query_id)
        self._queue("callback_query", {"id": query_id, "from": self._user(user_id),
                                       "message": message, "chat_instance": f"ci{chat_id}",
                                       "data": data})
        return query_id

    @property
    def pending_updates(self) -> int:
        with self._lock:
            return len(self._updates)

    # ----------------------------------------------------------------- queries
    def calls_to(self, *methods: str, ok_only: bool = True) -> list[Call]:
        wanted = {m.lower() for m in methods}
        return [c for c in list(self.calls)
                if c.method.lower() in wanted and (c.ok or not ok_only)]

    def messages_to(self, chat_id: int) -> list[Call]:
        """Messages delivered to a chat (send* methods answered ok), in order."""
        return [c for c in list(self.calls) if c.ok and c.method.lower() in SEND_METHODS
                and c.chat_id == chat_id]

    def replies_to(self, chat_id: int, message_id: int) -> list[Call]:
        return [c for c in self.messages_to(chat_id) if c.reply_to == message_id]

    async def wait_for(self, predicate: Callable[[Call], bool], timeout: float = 10.0) -> Call:
        """The first delivered call (already recorded or coming) for which predicate is true."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            calls = list(self.calls)
            for call in calls[seen:]:
                if call.status and call.ok and predicate(call):
                    return call
            # calls still in flight (status 0) are looked at again next round
            seen = next((i for i, c in enumerate(calls) if not c.status), len(calls))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                recent = "\n  ".join(repr(c) for c in calls[-8:])
                raise TimeoutError(f"no matching call within {timeout}s; last calls:\n  {recent}")
            await self._wait_change(remaining)

    async def wait_reply(self, chat_id: int, message_id: int, timeout: float = 10.0) -> Call:
        """The bot's first delivered message replying to the user's message."""
        return await self.wait_for(
            lambda c: c.method.lower() in SEND_METHODS and c.chat_id == chat_id
            and c.reply_to == message_id, timeout)

    async def wait_message(self, chat_id: int, predicate: Callable[[Call], bool] | None = None,
                           timeout: float = 10.0, after: float = 0.0) -> Call:
        """A delivered send*/edit call to the chat, made after monotonic time ``after``."""
        methods = SEND_METHODS | EDIT_METHODS
        return await self.wait_for(
            lambda c: c.method.lower() in methods and c.chat_id == chat_id and c.time >= after
            and (predicate is None or predicate(c)), timeout)

    async def wait_callback_answer(self, query_id: str, timeout: float = 10.0) -> Call:
        return await self.wait_for(
            lambda c: c.method == "answerCallbackQuery"
            and str(c.params.get("callback_query_id")) == query_id, timeout)

    async def wait_polling(self, after: float = 0.0, timeout: float = 10.0) -> Call:
        """A getUpdates call received after monotonic time ``after`` (the bot is polling)."""
        deadline = time.monotonic() + timeout
        while True:
            for call in list(self.calls):
                if call.method == "getUpdates" and call.time >= after:
                    return call
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no getUpdates after t={after:.2f} within {timeout}s")
            await self._wait_change(remaining)

    def max_rate(self, window: float = 1.0, chat_id: int | None = None,
                 methods: frozenset[str] = SEND_METHODS) -> int:
        """The most delivered messages (to the chat, or overall) in any ``window`` seconds."""
        return most_in_window([c.time for c in list(self.calls) if c.ok and c.method.lower()
                               in methods and (chat_id is None or c.chat_id == chat_id)], window)

    def rate(self, chat_id: int | None = None, methods: frozenset[str] = SEND_METHODS) -> float:
        """Mean delivered messages per second between the first and the last one."""
        times = sorted(c.time for c in list(self.calls) if c.ok and c.method.lower() in methods
                       and (chat_id is None or c.chat_id == chat_id))
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)

    # ----------------------------------------------------------------- HTTP
    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, Upload]]:
        params: dict[str, Any] = {k: _decode_field(k, v) for k, v in request.query.items()}
        files: dict[str, Upload] = {}
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        elif request.can_read_body:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = Upload(key, value.filename, value.content_type,
                                        value.file.read())
                else:
                    params[key] = _decode_field(key, str(value))
        return params, files

    async def _handle_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401,
                                      "description": "Unauthorized"}, status=401)
        try:
            params, files = await self._params(request)
        except Exception as exc:
            return web.json_response(ApiError(400, f"Bad Request: {exc}").body(), status=400)
        call = Call(method, params, files, time.monotonic())
        self.calls.append(call)
        self._wake()
        try:
            slow = self._take(self._delays, method.lower())
            if slow:
                await asyncio.sleep(slow.seconds)
            fault = self._take(self._faults, method.lower())
            if fault:
                call.fault = fault.description
                raise ApiError(fault.status, fault.description, fault.retry_after)
            handler = getattr(self, f"_api_{method.lower()}", None)
            if handler is None:
                self.unknown_methods.append(method)
                result: Any = True
            else:
                result = await handler(params, files)
        except ApiError as exc:
            call.status = exc.status
            call.result = exc.description
            self._wake()
            return web.json_response(exc.body(), status=exc.status)
        call.status, call.result = 200, result
        if method.lower() == "answercallbackquery":
            self.answered_callbacks[str(params.get("callback_query_id"))] = call
        self._wake()
        return web.json_response({"ok": True, "result": result})

    async def _handle_download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401,
                                      "description": "Unauthorized"}, status=401)
        path = request.match_info["path"]
        call = Call("download", {"file_path": path}, {}, time.monotonic())
        self.calls.append(call)
        slow = self._take(self._delays, "download")
        if slow:
            await asyncio.sleep(slow.seconds)
        fault = self._take(self._faults, "download")
        stored = self._files_by_path.get(path)
        if fault or stored is None:
            error = (ApiError(fault.status, fault.description, fault.retry_after) if fault
                     else ApiError(404, "Not Found"))
            call.status, call.fault = error.status, error.description
            self._wake()
            return web.json_response(error.body(), status=error.status)
        call.status, call.result = 200, len(stored.data)
        self._wake()
        return web.Response(body=stored.data, content_type="application/octet-stream")

    # ----------------------------------------------------------------- methods
    async def _api_getme(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        return self.bot_user

    async def _api_close(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        return True

    _api_logout = _api_close

    async def _api_setmycommands(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list) or not all(
                isinstance(c, dict) and re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command")))
                and 1 <= len(str(c.get("description", ""))) <= 256 for c in commands):
            raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        self.commands = commands
        return True

    async def _api_getmycommands(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        return self.commands

    async def _api_deletemycommands(self, params: dict[str, Any],
                                    files: dict[str, Upload]) -> Any:
        self.commands = []
        return True

    async def _api_getupdates(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        allowed = params.get("allowed_updates") or None
        if self.webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        with self._lock:
            if offset > 0:  # confirms every update below offset
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            elif offset < 0:
                self._updates = self._updates[offset:]
            self._poll_generation += 1
            generation = self._poll_generation
        self._wake()  # ends an older poll with 409 Conflict, like Telegram
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if generation != self._poll_generation:
                    raise ApiError(409, "Conflict: terminated by other getUpdates request; "
                                        "make sure that only one bot instance is running")
                ready = [u for u in self._updates
                         if allowed is None or any(k in allowed for k in u if k != "update_id")]
            if ready or time.monotonic() >= deadline:
                return ready[:limit]
            await self._wait_change(deadline - time.monotonic())

    def _check_chat(self, params: dict[str, Any]) -> int:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        if self.strict_chats and chat_id not in self.users:
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    @staticmethod
    def _check_markup_keyboard(params: dict[str, Any]) -> dict[str, Any] | None:
        markup = params.get("reply_markup")
        if not isinstance(markup, dict):
            return None
        for row in markup.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup if "inline_keyboard" in markup else None

    def _check_caption(self, params: dict[str, Any]) -> str | None:
        caption = params.get("caption")
        if caption is None:
            return None
        caption = str(caption)
        _check_markup(caption, params.get("parse_mode"))
        plain = _plain_html(caption) if str(params.get("parse_mode")).lower() == "html" else caption
        if len(plain) > MAX_CAPTION:
            raise ApiError(400, "Bad Request: message caption is too long")
        return plain

    def _bot_message(self, chat_id: int, params: dict[str, Any], **fields: Any) -> dict[str, Any]:
        mid = self._message_id(chat_id)
        message: dict[str, Any] = {"message_id": mid, "date": int(time.time()),
                                   "chat": self._chat(chat_id), "from": self.bot_user, **fields}
        reply_to = Call("", params, {}, 0).reply_to
        if reply_to is not None:
            replied = self.user_messages.get((chat_id, reply_to)) or self.bot_messages.get(
                (chat_id, reply_to))
            allow = params.get("allow_sending_without_reply") or (
                isinstance(params.get("reply_parameters"), dict)
                and params["reply_parameters"].get("allow_sending_without_reply"))
            if replied is None and not allow:
                raise ApiError(400, "Bad Request: message to be replied not found")
            if replied is not None:
                message["reply_to_message"] = {k: v for k, v in replied.items()
                                               if k != "reply_to_message"}
        markup = self._check_markup_keyboard(params)
        if markup:
            message["reply_markup"] = markup
        with self._lock:
            self.bot_messages[(chat_id, mid)] = message
        return message

    async def _api_sendmessage(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        chat_id = self._check_chat(params)
        plain = _message_text(params, too_long="message is too long")
        return self._bot_message(chat_id, params, text=plain)

    def _input_file(self, value: Any, files: dict[str, Upload], field_name: str) -> Upload | str:
        """An uploaded part (by field name or attach://name) or a file_id / URL string."""
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
            if upload is None:
                raise ApiError(400, f"Bad Request: file {value} not found in the request")
            return upload
        if value is None and field_name in files:
            return files[field_name]
        if isinstance(value, str) and value:
            if value in self._files or value.startswith(("http://", "https://")):
                return value
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        raise ApiError(400, f"Bad Request: there is no {field_name} in the request")

    def _photo_field(self, source: Upload | str) -> list[dict[str, Any]]:
        if isinstance(source, str):
            stored = self._files.get(source)
            if stored is None:  # an URL: Telegram would fetch it
                return self._photo_sizes(b"", 1, 1)
            return stored.sizes or [{"file_id": stored.file_id,
                                     "file_unique_id": stored.file_unique_id,
                                     "width": stored.width or 1, "height": stored.height or 1,
                                     "file_size": len(stored.data)}]
        size = _image_size(source.data)
        if size is None:
            raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        if sum(size) > 10_000 or max(size) / max(min(size), 1) > 20:
            raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        if len(source.data) > 10 * 1024 * 1024:
            raise ApiError(400, "Bad Request: photo is too big")
        return self._photo_sizes(source.data)

    def _document_field(self, source: Upload | str) -> dict[str, Any]:
        if isinstance(source, str):
            stored = self._files.get(source)
            data = stored.data if stored else b""
            file_id = source if stored else self.register_file(b"")
            name = None
        else:
            data, name = source.data, source.filename
            file_id = self.register_file(data)
        document: dict[str, Any] = {"file_id": file_id,
                                    "file_unique_id": self._files[file_id].file_unique_id,
                                    "file_size": len(data)}
        if name:
            document["file_name"] = name
        if not isinstance(source, str) and source.content_type:
            document["mime_type"] = source.content_type
        return document

    async def _api_sendphoto(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        chat_id = self._check_chat(params)
        photo = self._photo_field(self._input_file(params.get("photo"), files, "photo"))
        fields: dict[str, Any] = {"photo": photo}
        caption = self._check_caption(params)
        if caption is not None:
            fields["caption"] = caption
        return self._bot_message(chat_id, params, **fields)

    async def _api_senddocument(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        chat_id = self._check_chat(params)
        document = self._document_field(
            self._input_file(params.get("document"), files, "document"))
        fields: dict[str, Any] = {"document": document}
        caption = self._check_caption(params)
        if caption is not None:
            fields["caption"] = caption
        return self._bot_message(chat_id, params, **fields)

    async def _api_sendmediagroup(self, params: dict[str, Any],
                                  files: dict[str, Upload]) -> Any:
        chat_id = self._check_chat(params)
        media = params.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: wrong number of media specified (2-10)")
        group_id = f"{time.monotonic_ns()}"
        messages = []
        for item in media:
            source = self._input_file(item.get("media"), files, "media")
            fields: dict[str, Any] = {"media_group_id": group_id}
            if item.get("type") == "photo":
                fields["photo"] = self._photo_field(source)
            elif item.get("type") == "document":
                fields["document"] = self._document_field(source)
            else:
                raise ApiError(400, f"Bad Request: unsupported media type {item.get('type')}")
            caption = self._check_caption(item)
            if caption is not None:
                fields["caption"] = caption
            messages.append(self._bot_message(chat_id, params, **fields))
        return messages

    def _edited(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("inline_message_id"):
            raise ApiError(400, "Bad Request: inline messages are not served by the stand-in")
        chat_id = params.get("chat_id")
        message = self.bot_messages.get((chat_id, params.get("message_id")))  # type: ignore[arg-type]
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        return message

    def _apply_edit(self, message: dict[str, Any], changes: dict[str, Any],
                    params: dict[str, Any]) -> dict[str, Any]:
        markup = self._check_markup_keyboard(params)
        new = {**message, **changes}
        new.pop("reply_markup", None)
        if markup:
            new["reply_markup"] = markup
        if all(new.get(k) == message.get(k) for k in ("text", "caption", "reply_markup")):
            raise ApiError(400, "Bad Request: message is not modified: specified new message "
                                "content and reply markup are exactly the same as a current "
                                "content and reply markup of the message")
        new["edit_date"] = int(time.time())
        with self._lock:
            self.bot_messages[(message["chat"]["id"], message["message_id"])] = new
        return new

    async def _api_editmessagetext(self, params: dict[str, Any],
                                   files: dict[str, Upload]) -> Any:
        message = self._edited(params)
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        plain = _message_text(params, too_long="MESSAGE_TOO_LONG")
        return self._apply_edit(message, {"text": plain}, params)

    async def _api_editmessagecaption(self, params: dict[str, Any],
                                      files: dict[str, Upload]) -> Any:
        message = self._edited(params)
        caption = self._check_caption(params)
        return self._apply_edit(message, {"caption": caption or ""}, params)

    async def _api_editmessagereplymarkup(self, params: dict[str, Any],
                                          files: dict[str, Upload]) -> Any:
        return self._apply_edit(self._edited(params), {}, params)

    async def _api_answercallbackquery(self, params: dict[str, Any],
                                       files: dict[str, Upload]) -> Any:
        query_id = str(params.get("callback_query_id", ""))
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        with self._lock:
            if query_id not in self._pending_callbacks:
                raise ApiError(400, "Bad Request: query is too old and response timeout "
                                    "expired or query ID is invalid")
            self._pending_callbacks.discard(query_id)
        return True

    async def _api_getfile(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if len(stored.data) > MAX_GETFILE_BYTES:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "file_size": len(stored.data), "file_path": stored.path}

    async def _api_sendchataction(self, params: dict[str, Any],
                                  files: dict[str, Upload]) -> Any:
        self._check_chat(params)
        return True

    async def _api_deletemessage(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        key = (params.get("chat_id"), params.get("message_id"))
        with self._lock:
            if self.bot_messages.pop(key, None) is None:  # type: ignore[arg-type]
                raise ApiError(400, "Bad Request: message to delete not found")
        return True

    # ----------------------------------------------------------------- webhook
    async def _api_setwebhook(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        url = str(params.get("url") or "")
        if not url:
            return await self._api_deletewebhook(params, files)  # Telegram: empty url removes
        if not url.startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for "
                                "webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = {"url": url, "secret_token": secret,
                        "allowed_updates": params.get("allowed_updates"),
                        "max_connections": int(params.get("max_connections") or 40)}
        if params.get("drop_pending_updates"):
            with self._lock:
                self._updates.clear()
        self._deliver_soon()
        return True

    async def _api_deletewebhook(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        self.webhook = None
        if params.get("drop_pending_updates"):
            with self._lock:
                self._updates.clear()
        return True

    async def _api_getwebhookinfo(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        info: dict[str, Any] = {"url": "", "has_custom_certificate": False,
                                "pending_update_count": self.pending_updates}
        if self.webhook is not None:
            info |= {"url": self.webhook["url"],
                     "max_connections": self.webhook["max_connections"]}
            if self.webhook["allowed_updates"] is not None:
                info["allowed_updates"] = self.webhook["allowed_updates"]
        failed = [d for d in self.webhook_deliveries if not 200 <= d.status < 300]
        if failed:
            info |= {"last_error_date": int(failed[-1].wall_time),
                     "last_error_message": failed[-1].error}
        return info

    def _deliver_soon(self) -> None:
        """Start POSTing pending updates (from any thread) when a webhook is set."""
        loop = self._loop
        if self.webhook is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver_pending)

    def _deliver_pending(self) -> None:
        if self.webhook is None or self.webhook_target is None or self.is_down:
            return
        with self._lock:
            todo = [u for u in self._updates if u["update_id"] not in self._webhook_in_flight]
            todo = todo[:max(0, self.webhook["max_connections"] - len(self._webhook_in_flight))]
            self._webhook_in_flight.update(u["update_id"] for u in todo)
        for update in todo:
            asyncio.ensure_future(self._deliver(update))

    async def _deliver(self, update: dict[str, Any]) -> None:
        """POST one update to the bot; on 2xx it is confirmed, else retried later."""
        if self.webhook is None or self.webhook_target is None:  # deleted meanwhile
            with self._lock:
                self._webhook_in_flight.discard(update["update_id"])
            return
        path = re.sub(r"^https://[^/]+", "", self.webhook["url"]) or "/"
        secret = (self.webhook["secret_token"] if self.webhook_secret_override is None
                  else self.webhook_secret_override)
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        if self._webhook_session is None:
            self._webhook_session = ClientSession(timeout=ClientTimeout(total=60))
        delivery = WebhookDelivery(update["update_id"], time.monotonic(), time.time())
        try:
            async with self._webhook_session.post(self.webhook_target.rstrip("/") + path,
                                                  json=update, headers=headers) as response:
                delivery.status = response.status
                delivery.error = f"Wrong response from the webhook: {response.status}"
        except (ClientError, TimeoutError) as exc:
            delivery.error = f"Connection failed: {type(exc).__name__}"
        self.webhook_deliveries.append(delivery)
        with self._lock:
            self._webhook_in_flight.discard(update["update_id"])
            if 200 <= delivery.status < 300:
                self._updates = [u for u in self._updates if u is not update]
        self._wake()
        if not 200 <= delivery.status < 300 and self._loop is not None:
            self._loop.call_later(WEBHOOK_RETRY_S, self._deliver_pending)
        else:
            self._deliver_pending()

    async def wait_delivery(self, update_id: int | None = None, status: int | None = None,
                            after: float = 0.0, timeout: float = 10.0) -> WebhookDelivery:
        """The first webhook POST (of ``update_id``, answered ``status``, made after
        monotonic time ``after``); ``status`` 0: the bot could not be reached."""
        deadline = time.monotonic() + timeout
        while True:
            for delivery in list(self.webhook_deliveries):
                if (update_id is None or delivery.update_id == update_id) and (
                        status is None or delivery.status == status) and delivery.time >= after:
                    return delivery
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no such webhook delivery within {timeout}s: "
                                   f"{self.webhook_deliveries[-5:]}")
            await self._wait_change(remaining)
