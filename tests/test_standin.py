"""The Bot API stand-in checked with python-telegram-bot's own ``telegram.Bot`` client."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
import warnings
from collections.abc import Awaitable, Callable

import pytest
from PIL import Image
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.request import HTTPXRequest

from bot.request import AiohttpRequest
from tests.botapi_standin import BotApiStandIn

pytestmark = pytest.mark.timeout(60)
USER = 4242


def jpeg(width: int = 640, height: int = 480, color: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (color, color, color)).save(out, "JPEG")
    return out.getvalue()


def with_bot(scenario: Callable[[BotApiStandIn, Bot], Awaitable[None]],
             token: str | None = None) -> None:
    """Run a scenario with a fresh stand-in and a PTB Bot pointed at it, twice: with PTB's own
    HTTPXRequest and with the bot's AiohttpRequest (both must see the same Bot API)."""

    async def main(client: type[HTTPXRequest] | type[AiohttpRequest]) -> None:
        async with BotApiStandIn() as api:
            request = client(connect_timeout=2, read_timeout=5)
            updates = client(read_timeout=10)
            await asyncio.gather(request.initialize(), updates.initialize())
            bot = Bot(token or api.token, base_url=api.base_url,
                      base_file_url=api.base_file_url, request=request,
                      get_updates_request=updates)
            try:
                await scenario(api, bot)
            finally:
                await asyncio.gather(request.shutdown(), updates.shutdown())

    for client in (HTTPXRequest, AiohttpRequest):
        asyncio.run(main(client))


def test_get_me_and_commands() -> None:
    async def scenario(api: BotApiStandIn, bot: Bot) -> None:
        me = await bot.get_me()
        assert me.is_bot and me.username == api.bot_user["username"]
        assert me.id == int(api.token.split(":")[0])
        assert await bot.set_my_commands([("start", "Start"), ("stats", "Model figures")])
        assert [c.command for c in await bot.get_my_commands()] == ["start", "stats"]
        assert await bot.delete_webhook()
        assert [c.method for c in api.calls] == ["getMe", "setMyCommands", "getMyCommands",
                                                 "deleteWebhook"]

    with_bot(scenario)


def test_wrong_token_is_refused() -> None:
    async def scenario(api: BotApiStandIn, bot: Bot) -> None:
        with pytest.raises(InvalidToken):
            await bot.get_me()
        assert api.calls == []

    with_bot(scenario, token="999:wrong-token")


def test_photo_upload_reads_back_with_keyboard_and_reply() -> None:
    async def scenario(api: BotApiStandIn, bot: Bot) -> None:
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

    with_bot(scenario)


def test_media_group_and_text_limits() -> None:
    async def scenario(api: BotApiStandIn, bot: Bot) -> None:
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

    with_bot(scenario)


def test_long_poll_returns_update_queued_while_waiting() -> None:
    async def scenario(api: BotApiStandIn, bot: Bot) -> None:
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

    with_bot(scenario)


def test_photo_document_sticker_and_callback_updates() -> None:
    async def scenario(api: BotApiStandIn, bot: Bot) -> None:
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

    with_bot(scenario)


def test_faults_429_500_delay_and_outage() -> None:
    async def scenario(api: BotApiStandIn, bot: Bot) -> None:
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

    with_bot(scenario)


def test_threaded_mode_for_sync_code() -> None:
    api = BotApiStandIn()
    with api.in_thread():
        mid = api.send_text(USER, "hello")

        async def client() -> None:
            bot = Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url)
            async with bot:
                (update,) = await bot.get_updates(timeout=1)
                await bot.send_message(USER, "hi", reply_to_message_id=mid)

        asyncio.run(client())
        call = api.run(api.wait_reply(USER, mid, timeout=2))
        assert call.text == "hi"
    assert api._thread is None
