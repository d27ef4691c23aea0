"""The Bot API stand-in checked with python-telegram-bot's own ``telegram.Bot`` client, twice:
with PTB's HTTPXRequest and with the bot's AiohttpRequest (both must see the same Bot API)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import time
import warnings
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from telegram import (
    Bot,
    BotCommand,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    MessageEntity,
    ReplyParameters,
)
from telegram.error import (
    BadRequest,
    Conflict,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.request import AiohttpRequest
from tests.support import BotApiStandIn
from tests.support.standin.webhook import SECRET_HEADER

pytestmark = pytest.mark.timeout(60)
USER = 4242
HOOK_URL = "https://bot.example.test/telegram/updates"  # what a reverse proxy would serve
HOOK_SECRET = "Webhook-Secret_4242"


def jpeg(width: int = 640, height: int = 480, color: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (color, color, color)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture(params=[HTTPXRequest, AiohttpRequest], ids=["httpx", "aiohttp"])
def client(request: pytest.FixtureRequest) -> type[BaseRequest]:
    """Each test runs with both HTTP clients."""
    return request.param  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def make_bot(api: BotApiStandIn, client: type[BaseRequest],
                   token: str) -> AsyncIterator[Bot]:
    """A PTB Bot pointed at the stand-in; its clients started, the bot itself not initialized
    (initialize() would call getMe)."""
    request = client(connect_timeout=2, read_timeout=5)  # type: ignore[call-arg]
    updates = client(read_timeout=10)  # type: ignore[call-arg]
    await asyncio.gather(request.initialize(), updates.initialize())
    try:
        yield Bot(token, base_url=api.base_url, base_file_url=api.base_file_url,
                  request=request, get_updates_request=updates)
    finally:
        await asyncio.gather(request.shutdown(), updates.shutdown())


@pytest.fixture
async def bot(api: BotApiStandIn, client: type[BaseRequest]) -> AsyncIterator[Bot]:
    async with make_bot(api, client, api.token) as bot:
        yield bot


async def test_get_me_and_commands(api: BotApiStandIn, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.is_bot and me.username == api.bot_user["username"]
    assert me.id == int(api.token.split(":")[0])
    assert await bot.set_my_commands([("start", "Start"), ("stats", "Model figures")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "stats"]
    assert await bot.delete_webhook()
    assert [c.method for c in api.calls] == ["getMe", "setMyCommands", "getMyCommands",
                                             "deleteWebhook"]


async def test_wrong_token_is_refused(api: BotApiStandIn, client: type[BaseRequest]) -> None:
    async with make_bot(api, client, "999:wrong-token") as wrong:
        with pytest.raises(InvalidToken):
            await wrong.get_me()
    assert api.calls == []


async def test_photo_upload_reads_back_with_keyboard_and_reply(api: BotApiStandIn,
                                                               bot: Bot) -> None:
    image = jpeg(1000, 600)
    mid = api.send_photo(USER, image, caption="my digit")
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("✅", callback_data="ok:1")]])
    sent = await bot.send_photo(USER, image, caption="7 · 99% sure", reply_markup=keyboard,
                                reply_to_message_id=mid)
    assert sent.chat.id == USER and sent.from_user and sent.from_user.is_bot
    assert sent.caption == "7 · 99% sure"
    assert sent.reply_markup == keyboard
    assert sent.reply_to_message and sent.reply_to_message.message_id == mid
    assert (sent.photo[-1].width, sent.photo[-1].height) == (1000, 600)
    call = await api.wait_reply(USER, mid, timeout=2)
    assert call.method == "sendPhoto" and call.photo_bytes == [image]
    # the uploaded photo is served back by file_id
    data = await (await bot.get_file(sent.photo[-1].file_id)).download_as_bytearray()
    assert bytes(data) == image
    # edits: a change is accepted, an identical edit gets Telegram's "not modified"
    edited = await bot.edit_message_caption(USER, sent.message_id, caption="8 · corrected")
    assert isinstance(edited, type(sent)) and edited.caption == "8 · corrected"
    with pytest.raises(BadRequest, match="(?i)not modified"):
        await bot.edit_message_caption(USER, sent.message_id, caption="8 · corrected")


async def test_media_group_and_text_limits(api: BotApiStandIn, bot: Bot) -> None:
    api.add_user(USER)
    pics = [jpeg(200, 200, 10), jpeg(300, 200, 90)]
    sent = await bot.send_media_group(USER, [InputMediaPhoto(p) for p in pics],
                                      caption="curves")
    assert len(sent) == 2 and sent[0].media_group_id == sent[1].media_group_id
    assert api.calls_to("sendMediaGroup")[0].photo_bytes == pics
    with pytest.raises(BadRequest, match="(?i)too long"):
        await bot.send_message(USER, "x" * 4097)
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(777, "hello stranger")
    with pytest.raises(BadRequest, match="(?i)can.t parse entities"):
        await bot.send_message(USER, "7. sure!", parse_mode="MarkdownV2")
    with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
        await bot.send_message(USER, "x", reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton("a", callback_data="y" * 65)]]))


async def test_long_poll_returns_update_queued_while_waiting(api: BotApiStandIn, bot: Bot) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_polling(after=started, timeout=2)
    await asyncio.sleep(0.3)
    mid = api.send_command(USER, "retrain", "abc")
    updates = await poll
    assert time.monotonic() - started < 3  # answered on arrival, not at the timeout
    assert len(updates) == 1 and updates[0].message and updates[0].message.message_id == mid
    message = updates[0].message
    assert message.text == "/retrain abc" and message.chat.type == "private"
    assert message.chat.id == message.from_user.id == USER  # type: ignore[union-attr]
    assert message.entities[0].type == "bot_command" and message.entities[0].length == 8
    # unconfirmed updates come again; an offset past them confirms them
    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [updates[0].update_id]
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()
    assert api.pending_updates == 0


async def test_a_webhook_is_kept_like_telegram(api: BotApiStandIn, bot: Bot) -> None:
    """setWebhook / getWebhookInfo / deleteWebhook, and getUpdates refused meanwhile."""
    assert await bot.set_webhook(HOOK_URL, secret_token=HOOK_SECRET, allowed_updates=["message"])
    info = await bot.get_webhook_info()
    assert info.url == HOOK_URL and info.allowed_updates == ("message",)
    assert api.webhook == {"url": HOOK_URL, "secret_token": HOOK_SECRET,
                           "allowed_updates": ["message"], "max_connections": 40}
    api.send_text(USER, "hello")  # no webhook_target: it waits, as for an unreachable bot
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates(timeout=0)
    assert (await bot.get_webhook_info()).pending_update_count == 1
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    (update,) = await bot.get_updates(timeout=0)
    assert update.message is not None and update.message.text == "hello"
    # an empty url removes the webhook too, as at Telegram
    assert await bot.set_webhook(HOOK_URL) and api.webhook is not None
    assert await bot.set_webhook("") and api.webhook is None


async def test_a_webhook_gets_updates_posted_with_the_secret_and_refusals_retried(
    api: BotApiStandIn, bot: Bot
) -> None:
    """Each update is POSTed to webhook_target + the URL's path with the secret header; a
    refused one stays pending and is posted again, as Telegram does."""
    received: list[tuple[str, str | None, dict[str, object]]] = []

    async def hook(request: web.Request) -> web.Response:  # checks the secret like the bot
        secret = request.headers.get(SECRET_HEADER)
        received.append((request.path, secret, await request.json()))
        return web.Response(status=200 if secret == HOOK_SECRET else 403)

    server = web.Application()
    server.router.add_post("/telegram/updates", hook)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        api.webhook_target = f"http://127.0.0.1:{runner.addresses[0][1]}"
        assert await bot.set_webhook(HOOK_URL, secret_token=HOOK_SECRET)
        api.webhook_secret_override = "not-the-secret"
        mid = api.send_text(USER, "hello")
        refused = await api.wait_delivery(status=403, timeout=5)
        assert api.pending_updates == 1
        info = await bot.get_webhook_info()
        assert info.last_error_message == "Wrong response from the webhook: 403"
        api.webhook_secret_override = None
        await api.wait_delivery(refused.update_id, status=200, timeout=5)
        assert api.pending_updates == 0
        path, secret, body = received[-1]
        assert (path, secret) == ("/telegram/updates", HOOK_SECRET)
        assert body["update_id"] == refused.update_id
        assert body["message"]["message_id"] == mid  # type: ignore[index]
        assert [s for _, s, _ in received] == ["not-the-secret"] * (len(received) - 1) + [
            HOOK_SECRET]
    finally:
        await runner.cleanup()


async def test_photo_document_sticker_and_callback_updates(api: BotApiStandIn, bot: Bot) -> None:
    image = jpeg(1280, 960)
    api.send_photo(USER, image)
    api.send_document(USER, b"%PDF-1.4 junk", file_name="scan.pdf",
                      mime_type="application/pdf")
    api.send_sticker(USER)
    reply = await bot.send_message(USER, "7", reply_markup=InlineKeyboardMarkup(
        [[InlineKeyboardButton("7 ✅", callback_data="fb:1:7")]]))
    query_id = api.press(USER, reply.message_id, "fb:1:7")
    photo, doc, sticker, press = await bot.get_updates(timeout=0)
    sizes = photo.message.photo  # type: ignore[union-attr]
    assert [s.width for s in sizes] == sorted(s.width for s in sizes) and len(sizes) == 4
    assert (sizes[-1].width, sizes[-1].height) == (1280, 960)
    got = await (await bot.get_file(sizes[-1].file_id)).download_as_bytearray()
    assert bytes(got) == image
    small = await (await bot.get_file(sizes[0].file_id)).download_as_bytearray()
    assert Image.open(io.BytesIO(bytes(small))).size == (sizes[0].width, sizes[0].height)
    document = doc.message.document  # type: ignore[union-attr]
    assert (document.file_name, document.mime_type, document.file_size) == (
        "scan.pdf", "application/pdf", 13)
    assert sticker.message.sticker.emoji == "👍"  # type: ignore[union-attr]
    query = press.callback_query
    assert query and query.data == "fb:1:7" and query.from_user.id == USER
    assert query.message and query.message.message_id == reply.message_id
    assert await query.answer("thanks") is True
    assert query_id in api.answered_callbacks
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query(query_id)


async def test_groups_mentions_replies_and_other_bots(api: BotApiStandIn, bot: Bot) -> None:
    """Users in a supergroup, a caption that mentions the bot, a reply to the bot's message,
    another bot as a member, languages, and a ForceReply answered by reply."""
    group, other_bot = -1001234567890, 777
    api.add_group(group, "Digits club")
    api.add_user(USER, language_code="de-CH")
    api.add_user(other_bot, username="other_bot", is_bot=True, language_code=None)
    api.send_photo(USER, jpeg(), caption="hi @digitbot_test_bot, and @someone",
                   chat_id=group)
    asked = await bot.send_message(group, "Which number?", reply_markup=ForceReply(
        selective=True, input_field_placeholder="2026"))
    api.send_text(USER, "/stats@digitbot_test_bot now", chat_id=group)
    api.send_text(USER, "2028", chat_id=group, reply_to=asked.message_id)
    api.send_photo(other_bot, jpeg(), chat_id=group)
    with pytest.raises(ValueError, match="no message 999"):
        api.send_text(USER, "to nothing", chat_id=group, reply_to=999)
    photo, command, answer, from_bot = await bot.get_updates(timeout=0)
    message = photo.message
    assert message and message.chat.type == "supergroup" and message.chat.title == "Digits club"
    assert message.from_user and message.from_user.language_code == "de-CH"
    mentions = message.parse_caption_entities([MessageEntity.MENTION])
    assert sorted(mentions.values()) == ["@digitbot_test_bot", "@someone"]
    assert command.message and command.message.parse_entities() == {
        command.message.entities[0]: "/stats@digitbot_test_bot"}
    replied = answer.message and answer.message.reply_to_message
    assert replied and replied.message_id == asked.message_id and replied.text == "Which number?"
    assert from_bot.message and from_bot.message.from_user
    assert from_bot.message.from_user.is_bot and from_bot.message.from_user.language_code is None
    assert asked.message_id < answer.message.message_id  # one sequence per chat
    with pytest.raises(BadRequest, match="reply keyboard markup"):  # placeholder > 64
        await bot.send_message(group, "x", reply_markup=ForceReply(
            input_field_placeholder="9" * 65))
    quoted = await bot.send_message(group, "ok", reply_parameters=ReplyParameters(
        answer.message.message_id))
    assert quoted.reply_to_message and quoted.reply_to_message.text == "2028"


async def test_a_command_menu_per_language(api: BotApiStandIn, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand("start", "What I do")])
    await bot.set_my_commands([BotCommand("start", "Was ich kann")], language_code="de")
    assert [c.description for c in await bot.get_my_commands()] == ["What I do"]
    assert [c.description for c in await bot.get_my_commands(language_code="de")] == [
        "Was ich kann"]
    assert await bot.get_my_commands(language_code="ru") == ()
    with pytest.raises(BadRequest, match="(?i)invalid language code"):
        await bot.set_my_commands([BotCommand("start", "x")], language_code="deu")
    assert await bot.delete_my_commands(language_code="de")
    assert api.commands_by_language == {"": api.commands} and api.commands


async def test_faults_429_500_delay_and_outage(api: BotApiStandIn, bot: Bot) -> None:
    api.add_user(USER)
    api.fail("sendMessage", status=429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "hi")
    with warnings.catch_warnings():  # PTB 22 deprecates the int form of retry_after
        warnings.simplefilter("ignore")
        retry_after = caught.value.retry_after
    assert retry_after == dt.timedelta(seconds=3) or retry_after == 3
    api.fail("sendMessage", status=500, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError):
            await bot.send_message(USER, "hi")
    assert (await bot.send_message(USER, "hi")).text == "hi"
    assert [c.status for c in api.calls_to("sendMessage", ok_only=False)] == [
        429, 500, 500, 200]
    api.delay("getMe", 1.0)
    started = time.monotonic()
    await bot.get_me()
    assert time.monotonic() - started >= 1.0
    api.delay("getMe", 2.0)
    with pytest.raises(TimedOut):
        await bot.get_me(read_timeout=0.5)
    port = api.port
    await api.go_down()
    with pytest.raises((NetworkError, TimedOut)) as down:
        await bot.get_me()
    assert api.token not in str(down.value)
    mid = api.send_text(USER, "sent while the server was away")
    await api.come_back()
    assert api.port == port
    updates = await bot.get_updates(timeout=0)
    assert [u.message.message_id for u in updates] == [mid]  # type: ignore[union-attr]
    assert api.max_rate(window=1.0, chat_id=USER) == 1


async def test_an_unknown_method_is_404_not_found_as_on_telegram(api: BotApiStandIn,
                                                                  bot: Bot) -> None:
    # PTB can't tell a missing method from a rejected token: both are 404 from Telegram
    with pytest.raises(InvalidToken, match="endpoint 'sendMesage' does not exist"):
        await bot.do_api_request("sendMesage", api_kwargs={"chat_id": USER, "text": "hi"})
    async with aiohttp.ClientSession() as http:  # the raw answer, as Telegram gives it
        async with http.post(f"{api.base_url}{api.token}/frobnicate") as response:
            assert response.status == 404
            assert await response.json() == {"ok": False, "error_code": 404,
                                              "description": "Not Found"}
        async with http.post(f"{api.base_url}{api.token}/SENDMESSAGE",  # names: any case
                             data={"chat_id": USER, "text": "hi"}) as response:
            assert response.status == 400  # the method exists (the chat doesn't)
    assert api.unknown_methods == ["sendMesage", "frobnicate"]
    assert [c.status for c in api.calls] == [404, 404, 400]


@pytest.mark.parametrize(("method", "params", "description"), [
    ("sendMessage", {"text": "hi"}, "chat_id is empty"),
    ("sendMessage", {"chat_id": USER}, "message text is empty"),
    ("sendMessage", {"chat_id": USER, "text": ""}, "message text is empty"),
    ("sendPhoto", {"chat_id": USER}, "there is no photo in the request"),
    ("sendDocument", {"chat_id": USER}, "there is no document in the request"),
    ("sendMediaGroup", {"chat_id": USER}, 'parameter "media" is required'),
    ("sendChatAction", {"chat_id": USER}, 'parameter "action" is required'),
    ("sendChatAction", {"chat_id": USER, "action": "dancing"},
     "wrong parameter action in request"),
    ("editMessageText", {"chat_id": USER, "text": "x"}, "message identifier is not specified"),
    ("editMessageText", {"chat_id": USER, "message_id": 1}, "message text is empty"),
    ("editMessageCaption", {"message_id": 1}, "chat_id is empty"),
    ("editMessageReplyMarkup", {"chat_id": USER}, "message identifier is not specified"),
    ("deleteMessage", {"chat_id": USER}, "message identifier is not specified"),
    ("answerCallbackQuery", {}, "query is too old and response timeout expired or query ID "
                                "is invalid"),
    ("getFile", {}, 'parameter "file_id" is required'),
    ("setMyCommands", {}, 'parameter "commands" is required'),
    ("setWebhook", {"url": "http://plain.example.test/hook"},
     "bad webhook: An HTTPS URL must be provided for webhook"),
    ("setWebhook", {"url": HOOK_URL, "secret_token": "no spaces!"},
     "secret token contains unallowed characters"),
])
@pytest.mark.filterwarnings("ignore:Please use 'Bot.:UserWarning")  # raw calls on purpose
async def test_a_missing_required_parameter_gets_telegrams_400(
    api: BotApiStandIn, bot: Bot, method: str, params: dict[str, object], description: str
) -> None:
    api.add_user(USER)
    with pytest.raises(BadRequest) as error:
        await bot.do_api_request(method, api_kwargs=params)
    assert api.calls[-1].status == 400 and api.calls[-1].result == f"Bad Request: {description}"
    assert error.value.message.lower() == description.lower()  # PTB drops "Bad Request: "
    assert api.unknown_methods == []


async def test_every_method_declares_its_required_parameters(api: BotApiStandIn) -> None:
    """The methods served (the bot's tests fail on any other), with Bot API's required ones."""
    assert api.methods == sorted([
        "answercallbackquery", "close", "deletemessage", "deletemycommands", "deletewebhook",
        "editmessagecaption", "editmessagereplymarkup", "editmessagetext", "getfile", "getme",
        "getmycommands", "getupdates", "getwebhookinfo", "logout", "sendchataction",
        "senddocument", "sendmediagroup", "sendmessage", "sendphoto", "setmycommands",
        "setwebhook"])


async def test_threaded_mode_for_sync_code() -> None:
    """In its own thread (for sync tests and benches: a bot process, api.run(...) to wait)."""
    api = BotApiStandIn()
    with api.in_thread():
        mid = api.send_text(USER, "hello")
        async with Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url) as bot:
            (update,) = await bot.get_updates(timeout=1)
            await bot.send_message(USER, "hi", reply_to_message_id=mid)
        call = await asyncio.to_thread(api.run, api.wait_reply(USER, mid, timeout=2))
        assert call.text == "hi"
    assert api._thread is None
