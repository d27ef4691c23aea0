"""The stand-in's server core: routing, the token check, parameter decoding and validation,
recording every call, error answers, and waiting for calls (the test side's clock).

A Bot API method is a coroutine of one of the concern mixins marked with :func:`bot_method`;
the core finds it by name (case-insensitive, like Telegram), answers 400 when one of its
required parameters is missing, and 404 ``Not Found`` when no such method exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from aiohttp import web

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
# What Telegram answers when a required parameter is missing or empty; any other parameter:
# 'Bad Request: parameter "<name>" is required'.
MISSING = {
    "chat_id": "chat_id is empty",
    "text": "message text is empty",
    "photo": "there is no photo in the request",
    "document": "there is no document in the request",
    "message_id": "message identifier is not specified",
    "callback_query_id": "query is too old and response timeout expired or query ID is invalid",
}

T = TypeVar("T")
Handler = Callable[..., Awaitable[Any]]


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status, description and optional parameters."""

    def __init__(self, status: int, description: str, retry_after: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after
        self.headers = headers  # e.g. Location for a redirect

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


def bot_method(name: str, *required: str) -> Callable[[Handler], Handler]:
    """Make ``async def _x(self, params, files)`` the handler of Bot API method ``name``;
    ``required`` are the parameters Telegram rejects the call without (400)."""

    def mark(handler: Handler) -> Handler:
        handler.bot_api = (name, required)  # type: ignore[attr-defined]
        return handler

    return mark


def most_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events within any ``window`` seconds (Telegram's limits are per second)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _decode_field(name: str, value: str) -> Any:
    if name in TEXT_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _unauthorized() -> web.Response:
    return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"},
                             status=401)


class StandInCore:
    """Server lifecycle, routing and recording; the Bot API methods live in the mixins."""

    def __init__(self, token: str, host: str, port: int) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.calls: list[Call] = []
        self.unknown_methods: list[str] = []  # methods the bot called that don't exist (404)
        self.is_down = False
        self._lock = threading.RLock()
        self._methods: dict[str, tuple[Handler, tuple[str, ...]]] = {}
        for attr in dir(type(self)):
            marked = getattr(getattr(type(self), attr), "bot_api", None)
            if marked:
                name, required = marked
                self._methods[name.lower()] = (getattr(self, attr), required)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def methods(self) -> list[str]:
        """The Bot API methods served (lower case)."""
        return sorted(self._methods)

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

    async def start(self) -> Self:
        """Listen on host:port (a free port when 0) in the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        await self._listen()
        return self

    async def stop(self) -> None:
        await self._close_server()
        self._wake()

    async def __aenter__(self) -> Self:
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

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[Self]:
        """Run the server on its own event loop in a daemon thread (for sync code)."""
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop_thread()

    def start_in_thread(self) -> Self:
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

    # ----------------------------------------------------------------- recording
    def calls_to(self, *methods: str, ok_only: bool = True) -> list[Call]:
        wanted = {m.lower() for m in methods}
        return [c for c in list(self.calls)
                if c.method.lower() in wanted and (c.ok or not ok_only)]

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
            return _unauthorized()
        try:
            params, files = await self._params(request)
        except Exception as exc:
            return web.json_response(ApiError(400, f"Bad Request: {exc}").body(), status=400)
        call = Call(method, params, files, time.monotonic())
        self.calls.append(call)
        self._wake()
        try:
            await self._in_spell(call)
            slow = self._take_delay(method.lower())
            if slow:
                await asyncio.sleep(slow)
            self._raise_fault(call, method.lower(), request)
            handler, required = self._method(method)
            for name in required:
                if params.get(name) in (None, "") and name not in files:
                    why = MISSING.get(name, f'parameter "{name}" is required')
                    raise ApiError(400, f"Bad Request: {why}")
            result = await handler(params, files)
        except ApiError as exc:
            call.status = exc.status
            call.result = exc.description
            self._wake()
            return web.json_response(exc.body(), status=exc.status,
                                     headers=exc.headers)
        call.status, call.result = 200, result
        self._after_call(call)
        self._after_delivery(call)
        self._wake()
        return web.json_response({"ok": True, "result": result})

    def _method(self, method: str) -> tuple[Handler, tuple[str, ...]]:
        """The handler of a Bot API method, or Telegram's 404 for a method that doesn't exist."""
        found = self._methods.get(method.lower())
        if found is None:
            self.unknown_methods.append(method)
            raise ApiError(404, "Not Found")
        return found

    async def _handle_download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _unauthorized()
        call = Call("download", {"file_path": request.match_info["path"]}, {}, time.monotonic())
        self.calls.append(call)
        try:
            await self._in_spell(call)
            slow = self._take_delay("download")
            if slow:
                await asyncio.sleep(slow)
            self._raise_fault(call, "download", request)
            data = self._download(call.params["file_path"])
        except ApiError as exc:
            call.status, call.fault = exc.status, exc.description
            self._wake()
            return web.json_response(exc.body(), status=exc.status,
                                     headers=exc.headers)
        call.status, call.result = 200, len(data)
        self._after_delivery(call)
        self._wake()
        return web.Response(body=data, content_type="application/octet-stream")

    # Provided by the concern mixins (faults.py, files.py, messages.py).
    def _take_delay(self, method: str) -> float | None:
        raise NotImplementedError

    async def _in_spell(self, call: Call) -> None:
        raise NotImplementedError

    def _after_delivery(self, call: Call) -> None:
        raise NotImplementedError

    def _raise_fault(self, call: Call, method: str, request: web.Request) -> None:
        raise NotImplementedError

    def _download(self, path: str) -> bytes:
        raise NotImplementedError

    def _after_call(self, call: Call) -> None:
        """Bookkeeping after a successful call (e.g. which callback queries are answered)."""
