"""Messages the bot sends and edits (texts, photos, documents, media groups, captions, inline
keyboards), callback-query answers, chat actions and the command menu; Telegram's own checks
on them; and the test side's view of them (what a chat got, waiting for a reply)."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

from tests.support.standin.core import (
    EDIT_METHODS,
    SEND_METHODS,
    ApiError,
    Call,
    StandInCore,
    Upload,
    bot_method,
    most_in_window,
)
from tests.support.standin.users import UsersMixin

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200
HTML_TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
                       "tg-spoiler", "a", "code", "pre", "blockquote", "tg-emoji"})
CHAT_ACTIONS = frozenset({"typing", "upload_photo", "record_video", "upload_video",
                          "record_voice", "upload_voice", "upload_document", "choose_sticker",
                          "find_location", "record_video_note", "upload_video_note"})


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


class MessagesMixin(UsersMixin, StandInCore):
    """What the bot says: send*, edit*, answerCallbackQuery, sendChatAction, deleteMessage,
    the command menu; ``messages_to``, ``replies_to``, ``wait_reply``, ``wait_message``,
    ``wait_callback_answer``, ``max_rate``, ``rate``."""

    def _init_messages(self, strict_chats: bool) -> None:
        self.strict_chats = strict_chats  # sending to a chat never seen -> "chat not found"
        self.commands: list[dict[str, Any]] = []  # the menu for every language
        self.commands_by_language: dict[str, list[dict[str, Any]]] = {}  # "" = every language
        self.answered_callbacks: dict[str, Call] = {}

    # ----------------------------------------------------------------- test side
    def messages_to(self, chat_id: int) -> list[Call]:
        """Messages delivered to a chat (send* methods answered ok), in order."""
        return [c for c in list(self.calls) if c.ok and c.method.lower() in SEND_METHODS
                and c.chat_id == chat_id]

    def replies_to(self, chat_id: int, message_id: int) -> list[Call]:
        return [c for c in self.messages_to(chat_id) if c.reply_to == message_id]

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

    def _after_call(self, call: Call) -> None:
        if call.method.lower() == "answercallbackquery":
            self.answered_callbacks[str(call.params.get("callback_query_id"))] = call

    # ----------------------------------------------------------------- Telegram's checks
    def _check_chat(self, params: dict[str, Any]) -> int:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        if self.strict_chats and chat_id not in self.users and chat_id not in self.groups:
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    @staticmethod
    def _check_markup_keyboard(params: dict[str, Any]) -> dict[str, Any] | None:
        """Telegram's checks on reply_markup; the inline keyboard (what a Message carries)."""
        markup = params.get("reply_markup")
        if not isinstance(markup, dict):
            return None
        if "force_reply" in markup:
            placeholder = markup.get("input_field_placeholder")
            if markup["force_reply"] is not True or (
                placeholder is not None and not 1 <= len(str(placeholder)) <= 64
            ) or not isinstance(markup.get("selective", False), bool):
                raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
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

    def _edited(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("inline_message_id"):
            raise ApiError(400, "Bad Request: inline messages are not served by the stand-in")
        if params.get("chat_id") in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        if params.get("message_id") in (None, ""):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        message = self.bot_messages.get((params["chat_id"], params["message_id"]))
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

    # ----------------------------------------------------------------- Bot API: sending
    @bot_method("sendMessage", "chat_id", "text")
    async def _send_message(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        chat_id = self._check_chat(params)
        plain = _message_text(params, too_long="message is too long")
        return self._bot_message(chat_id, params, text=plain)

    @bot_method("sendPhoto", "chat_id", "photo")
    async def _send_photo(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        chat_id = self._check_chat(params)
        photo = self._photo_field(self._input_file(params.get("photo"), files, "photo"))
        fields: dict[str, Any] = {"photo": photo}
        caption = self._check_caption(params)
        if caption is not None:
            fields["caption"] = caption
        return self._bot_message(chat_id, params, **fields)

    @bot_method("sendDocument", "chat_id", "document")
    async def _send_document(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        chat_id = self._check_chat(params)
        document = self._document_field(
            self._input_file(params.get("document"), files, "document"))
        fields: dict[str, Any] = {"document": document}
        caption = self._check_caption(params)
        if caption is not None:
            fields["caption"] = caption
        return self._bot_message(chat_id, params, **fields)

    @bot_method("sendMediaGroup", "chat_id", "media")
    async def _send_media_group(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        chat_id = self._check_chat(params)
        media = params["media"]
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

    @bot_method("sendChatAction", "chat_id", "action")
    async def _send_chat_action(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        self._check_chat(params)
        if params["action"] not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    # ----------------------------------------------------------------- Bot API: changing
    @bot_method("editMessageText", "text")
    async def _edit_message_text(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        message = self._edited(params)
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        plain = _message_text(params, too_long="MESSAGE_TOO_LONG")
        return self._apply_edit(message, {"text": plain}, params)

    @bot_method("editMessageCaption")
    async def _edit_message_caption(self, params: dict[str, Any],
                                    files: dict[str, Upload]) -> Any:
        message = self._edited(params)
        caption = self._check_caption(params)
        return self._apply_edit(message, {"caption": caption or ""}, params)

    @bot_method("editMessageReplyMarkup")
    async def _edit_message_reply_markup(self, params: dict[str, Any],
                                         files: dict[str, Upload]) -> Any:
        return self._apply_edit(self._edited(params), {}, params)

    @bot_method("deleteMessage", "chat_id", "message_id")
    async def _delete_message(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        key = (params["chat_id"], params["message_id"])
        with self._lock:
            if self.bot_messages.pop(key, None) is None:
                raise ApiError(400, "Bad Request: message to delete not found")
        return True

    @bot_method("answerCallbackQuery", "callback_query_id")
    async def _answer_callback_query(self, params: dict[str, Any],
                                     files: dict[str, Upload]) -> Any:
        query_id = str(params["callback_query_id"])
        text = params.get("text")
        if text is not None and len(str(text)) > MAX_CALLBACK_ANSWER:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        with self._lock:
            if query_id not in self._pending_callbacks:
                raise ApiError(400, "Bad Request: query is too old and response timeout "
                                    "expired or query ID is invalid")
            self._pending_callbacks.discard(query_id)
        return True

    # ----------------------------------------------------------------- Bot API: command menu
    # One menu per language_code (a two-letter ISO 639-1 code; "" for everyone else), for
    # the default scope (the stand-in has no other scopes).
    @staticmethod
    def _menu_language(params: dict[str, Any]) -> str:
        code = str(params.get("language_code") or "")
        if code and not re.fullmatch(r"[a-z]{2}", code):
            raise ApiError(400, "Bad Request: invalid language code specified")
        scope = params.get("scope")
        if scope is not None and (not isinstance(scope, dict) or scope.get("type") != "default"):
            raise ApiError(400, "Bad Request: the stand-in serves the default scope only")
        return code

    @bot_method("setMyCommands", "commands")
    async def _set_my_commands(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        commands = params["commands"]
        if not isinstance(commands, list) or not all(
                isinstance(c, dict) and re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command")))
                and 1 <= len(str(c.get("description", ""))) <= 256 for c in commands):
            raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        language = self._menu_language(params)
        self.commands_by_language[language] = commands
        if not language:
            self.commands = commands
        return True

    @bot_method("getMyCommands")
    async def _get_my_commands(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        return self.commands_by_language.get(self._menu_language(params), [])

    @bot_method("deleteMyCommands")
    async def _delete_my_commands(self, params: dict[str, Any],
                                  files: dict[str, Upload]) -> Any:
        language = self._menu_language(params)
        self.commands_by_language.pop(language, None)
        if not language:
            self.commands = []
        return True
