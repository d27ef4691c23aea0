"""Groups and supergroups, in process: which photos the bot reads (a caption that mentions it,
a reply to one of its messages, any other one with GROUP_READ_ALL — answered only when it
holds digits), commands named @thisbot, silence towards chatter and towards other bots, and
buttons that only work for whoever sent the photo.

"Nothing was said" is checked after a later message of the same user got its answer: one
user's photos are read one after another (their lane), and a message the bot ignores is done
with before the next one is even looked at.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import replies
from bot.app import BotApplication
from bot.i18n import translator
from tests.support import BotApiStandIn, Call
from tests.support.conversation import REPLY_S, buttons, press_async, reading
from tests.support.in_process import running_bot
from tests.support.pictures import blank_photo, digit_photo, number_photo

pytestmark = pytest.mark.timeout(120)

EN = translator("en")
ME = "@digitbot_test_bot"  # the stand-in's bot username


@pytest.fixture
async def group_app(api: BotApiStandIn, tmp_path: Path) -> AsyncIterator[BotApplication]:
    """The bot without Telegram's rate limits: group sends are otherwise ≥ 3 s apart
    (20 a minute), which is the limiter's business, tested in its own place."""
    async with running_bot(api, tmp_path / "data", rate_limit=False) as application:
        yield application


async def reply_to(api: BotApiStandIn, chat: int, mid: int) -> Call:
    return await api.wait_reply(chat, mid, timeout=REPLY_S)


def said_in(api: BotApiStandIn, chat: int) -> list[int | None]:
    """What the bot's messages in the chat replied to."""
    return [c.reply_to for c in api.messages_to(chat)]


async def test_photos_that_mention_the_bot_or_reply_to_it_are_read(
    api: BotApiStandIn, group_app: BotApplication
) -> None:
    group, user = -1001000000001, 801
    api.add_group(group, "Homework")
    image, label = digit_photo(0)
    mid = api.send_photo(user, image, caption=f"what is this, {ME.upper()}?", chat_id=group)
    first = await reply_to(api, group, mid)
    assert reading(first) == str(label) and len(buttons(first)) == 11
    image, label = digit_photo(1)  # a photo sent as a reply to the bot's reading
    mid = api.send_photo(user, image, chat_id=group, reply_to=first.result["message_id"])
    assert reading(await reply_to(api, group, mid)) == str(label)
    mid = api.send_photo(user, blank_photo(), caption=f"{ME} and this?", chat_id=group)
    assert (await reply_to(api, group, mid)).text == replies.no_digit(EN)  # asked: answered
    mid = api.send_document(user, b"%PDF-1.4\n", "scan.pdf", "application/pdf",
                            caption=f"{ME} can you?", chat_id=group)
    assert (await reply_to(api, group, mid)).text == replies.PDF


async def test_other_photos_are_answered_only_when_they_hold_digits(
    api: BotApiStandIn, group_app: BotApplication
) -> None:
    """GROUP_READ_ALL (the default): Telegram delivered the photo (privacy mode off, or the
    bot an admin) without it being sent to the bot. Holiday pictures get no answer."""
    group, user = -1001000000002, 802
    blank = api.send_photo(user, blank_photo(), chat_id=group)
    api.send_photo(user, blank_photo(), caption=f"{ME[1:]} without the @", chat_id=group)
    api.send_document(user, b"%PDF-1.4\n", "minutes.pdf", "application/pdf", chat_id=group)
    api.send_document(user, b"PK\x03\x04", "photos.zip", "application/zip", chat_id=group)
    api.send_text(user, "see you all at 5", chat_id=group)
    api.send_sticker(user, chat_id=group)
    number = api.send_photo(user, number_photo(), chat_id=group)
    reply = await reply_to(api, group, number)
    assert reading(reply) == "2026" and len(buttons(reply)) == 2
    assert said_in(api, group) == [number]
    assert blank < number
    rows = group_app.bot_data.services.storage.live_stats()
    assert rows.photos == 1  # the photos it kept quiet about were not stored either


async def test_with_group_read_all_off_only_photos_sent_to_the_bot_are_read(
    api: BotApiStandIn, tmp_path: Path
) -> None:
    group, user = -1001000000003, 803
    async with running_bot(api, tmp_path / "data", rate_limit=False, group_read_all=False):
        api.send_photo(user, number_photo(), chat_id=group)
        image, label = digit_photo(2)
        mid = api.send_photo(user, image, caption=f"{ME} please", chat_id=group)
        assert reading(await reply_to(api, group, mid)) == str(label)
        assert said_in(api, group) == [mid]
        assert len(api.calls_to("getFile")) == 1  # the other one wasn't even downloaded


async def test_commands_named_for_this_bot_are_answered_and_others_left_alone(
    api: BotApiStandIn, group_app: BotApplication
) -> None:
    group, user = -1001000000004, 804
    ignored = [api.send_text(user, text, chat_id=group) for text in (
        "/stats@other_bot", "/frobnicate@other_bot", "/frobnicate", "/retrain@other_bot 3")]
    unknown = api.send_text(user, f"/frobnicate{ME} now", chat_id=group)
    assert (await reply_to(api, group, unknown)).text == replies.unknown_command(
        EN, f"/frobnicate{ME}")
    stats = api.send_text(user, f"/stats{ME}", chat_id=group)
    answer = await reply_to(api, group, stats)
    assert answer.method in ("sendMediaGroup", "sendPhoto")
    assert answer.text.startswith("Model v1 · MNIST test accuracy ")
    helped = api.send_text(user, f"/help{ME}", chat_id=group)
    assert (await reply_to(api, group, helped)).text == replies.help_text(EN)
    refused = api.send_text(user, f"/retrain{ME} 1", chat_id=group)
    assert (await reply_to(api, group, refused)).text == (
        "Sorry, /retrain is only for the bot's admins.")
    assert not set(said_in(api, group)) & set(ignored)


async def test_other_bots_are_never_answered(api: BotApiStandIn,
                                             group_app: BotApplication) -> None:
    group, robot, inline, person = -1001000000005, 890, 891, 805
    api.add_user(robot, username="robot_bot", is_bot=True)
    api.add_user(inline, username="gif_bot", is_bot=True)
    image, label = digit_photo(3)
    api.send_photo(robot, image, caption=f"{ME} read this", chat_id=group)
    api.send_text(robot, f"/start{ME}", chat_id=group)
    api.send_photo(robot, image)  # in its own chat with the bot
    api.send_text(robot, "/start")
    api.send_photo(person, image, caption=ME, chat_id=group, via_bot=inline)  # an inline bot's
    mid = api.send_photo(person, image, caption=f"{ME} mine", chat_id=group)
    assert reading(await reply_to(api, group, mid)) == str(label)
    assert said_in(api, group) == [mid]
    assert api.messages_to(robot) == []
    assert group_app.bot_data.services.storage.live_stats().users == 1


async def test_buttons_work_only_for_whoever_sent_the_photo(api: BotApiStandIn,
                                                           group_app: BotApplication) -> None:
    group, owner, other = -1001000000006, 806, 807
    api.add_user(other, language_code="de")
    image, label = digit_photo(4)
    reading_reply = await reply_to(api, group, api.send_photo(owner, image, caption=ME,
                                                              chat_id=group))
    confirm = buttons(reading_reply)[0]
    mid = reading_reply.result["message_id"]
    refused = await press_async(api, other, mid, confirm, chat_id=group)
    assert refused == "Dieser Button gehört nicht zu diesem Ergebnis."  # in the presser's language
    assert await press_async(api, owner, mid, confirm, chat_id=group) == (
        "✅ Confirmed — thank you!")

    photo = api.send_photo(owner, number_photo(), caption=ME, chat_id=group)
    number = await reply_to(api, group, photo)
    ok, fix = buttons(number)
    mid = number.result["message_id"]
    for data in (ok, fix):
        assert await press_async(api, other, mid, data, chat_id=group) == (
            "Dieser Button gehört nicht zu diesem Ergebnis.")
    pressed = time.monotonic()
    assert await press_async(api, owner, mid, fix, chat_id=group) == (
        "✏️ Reply with the right number.")
    asked = await api.wait_message(group, lambda c: "force_reply" in str(c.params),
                                   after=pressed, timeout=REPLY_S)
    assert asked.reply_to == photo  # selective: the photo's sender gets the reply field
    assert asked.params["reply_markup"]["selective"] is True
    question = asked.result["message_id"]
    # someone else's answer, the owner's chatter: not answers; the owner's reply is
    ignored = [api.send_text(other, "2027", chat_id=group, reply_to=question),
               api.send_text(other, "2027", chat_id=group),
               api.send_text(owner, "nice one", chat_id=group)]
    answer = api.send_text(owner, "2028", chat_id=group, reply_to=question)
    thanks = await reply_to(api, group, answer)
    assert thanks.text == "✏️ Thank you! 1 digit corrected: 2026 → 2028. I'll learn from it."
    assert not set(said_in(api, group)) & set(ignored)
    storage = group_app.bot_data.services.storage
    prediction = storage.prediction(int(ok.split(":")[1]))
    assert prediction is not None and prediction.user_id == owner
    assert storage.live_stats().corrected == 1
    # a plain number as the owner's next message counts too (the question is in this chat)
    photo = api.send_photo(owner, number_photo("75"), caption=ME, chat_id=group)
    number = await reply_to(api, group, photo)
    pressed = time.monotonic()
    await press_async(api, owner, number.result["message_id"], buttons(number)[1],
                      chat_id=group)
    await api.wait_message(group, lambda c: "force_reply" in str(c.params), after=pressed,
                           timeout=REPLY_S)
    answer = api.send_text(owner, "76", chat_id=group)
    assert (await reply_to(api, group, answer)).text.startswith("✏️ Thank you! 1 digit")


async def test_language_in_a_group_is_each_members_own(api: BotApiStandIn,
                                                       group_app: BotApplication) -> None:
    group, russian, spanish = -1001000000007, 808, 809
    api.add_user(russian, language_code="ru")
    api.add_user(spanish, language_code="es")
    mid = api.send_text(russian, f"/language{ME}", chat_id=group)
    menu = await reply_to(api, group, mid)
    assert menu.text == "Выберите язык:"
    answer = await press_async(api, spanish, menu.result["message_id"], "lang:de",
                               chat_id=group)
    assert answer == "Erledigt — ab jetzt spreche ich Deutsch mit dir."
    storage = group_app.bot_data.services.storage
    assert (storage.language(spanish), storage.language(russian)) == ("de", None)
    assert not api.calls_to("editMessageText")  # the menu stays for the others
    helped = api.send_text(russian, f"/help{ME}", chat_id=group)
    assert (await reply_to(api, group, helped)).text == replies.help_text(translator("ru"))
