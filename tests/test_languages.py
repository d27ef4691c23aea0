"""Languages: the catalogs are complete, each user is answered in their own language (Telegram's
language_code, or their /language choice, which survives a restart of the bot process), with
numbers in their locale's format, and the recognizer's English errors are translated too."""

from __future__ import annotations

import gettext
import io
import re
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot import i18n, replies
from bot.app import BotApplication
from model import preprocess
from model.recognize import Recognizer, Result
from tests.support import ROOT, BotApiStandIn, BotProcess
from tests.support.conversation import REPLY_S, ask, ask_async, buttons, press, press_async, reading
from tests.support.pictures import blank_photo, digit_photo, huge_png, number_photo, tiny_png

pytestmark = pytest.mark.timeout(120)

OTHERS = [language for language in i18n.LANGUAGES if language != i18n.DEFAULT]
# Words a speaker of each language would see first in /start: proof that the text is not the
# English one passed through (the catalogs are compared with the sources below).
HELLO = {"ru": "Я читаю рукописные цифры", "de": "Ich lese handgeschriebene Ziffern",
         "es": "Leo dígitos y números escritos a mano"}
# How sure, in words and the locale's percent: a decimal comma and a no-break space before %.
SURE = {"ru": r"уверенность \d+,\d\xa0%", "de": r"\d+,\d\xa0% sicher",
        "es": r"\d+,\d\xa0% de certeza"}
EN = i18n.translator("en")


# --- the catalogs ----------------------------------------------------------------------------


def source_messages() -> set[str | tuple[str, ...]]:
    """Every text marked in bot/, as `make i18n` extracts it."""
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    return {message for _, _, message, *_ in extract_from_dir(ROOT / "bot", keywords=keywords)}


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def po_catalog(language: str):  # noqa: ANN201 (babel's Catalog)
    path = i18n.LOCALES_DIR / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
    with path.open("rb") as f:
        return read_po(f, locale=language)


@pytest.mark.parametrize("language", OTHERS)
def test_every_catalog_translates_every_message(language: str) -> None:
    """No text of the code is missing, fuzzy or empty in any language, and every translation
    keeps the placeholders of its English text ({n}, {percent}, ...)."""
    wanted = source_messages()
    assert len(wanted) > 50
    catalog = po_catalog(language)
    found = {m.id if isinstance(m.id, str) else tuple(m.id): m for m in catalog if m.id}
    missing = [m for m in wanted if m not in found]
    assert not missing, f"{language}: not in the catalog (run make i18n): {missing}"
    for key in wanted:
        message = found[key]
        forms = [message.string] if isinstance(message.string, str) else list(message.string)
        assert not message.fuzzy, f"{language}: fuzzy: {key!r}"
        assert len(forms) == (1 if isinstance(key, str) else catalog.num_plurals), key
        english = key if isinstance(key, str) else key[-1]
        for form in forms:
            assert form.strip(), f"{language}: untranslated: {key!r}"
            assert fields(form) == fields(english), (language, key, form)


@pytest.mark.parametrize("language", OTHERS)
def test_the_compiled_catalogs_are_those_of_the_po_files(language: str) -> None:
    """The committed .mo (what the bot loads) says what its .po says: a .po edited without
    `make i18n` fails here."""
    catalog = po_catalog(language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    fresh = gettext.GNUTranslations(compiled)
    shipped = i18n.catalog(language)
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, str):
            assert shipped.gettext(message.id) == fresh.gettext(message.id), message.id
        else:
            for n in (*range(30), 101, 1_000_000):
                assert shipped.ngettext(*message.id[:2], n) == fresh.ngettext(*message.id[:2], n)


def test_the_package_ships_the_compiled_catalogs() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'bot = ["locales/*/LC_MESSAGES/*.mo"]' in pyproject
    for language in OTHERS:
        assert (i18n.LOCALES_DIR / language / "LC_MESSAGES" / "digitbot.mo").is_file()


# --- choosing the language and the locale ----------------------------------------------------


@pytest.mark.parametrize(("chosen", "code", "language", "locale", "percent", "number"), [
    (None, "ru", "ru", "ru", "99,2\xa0%", "1\xa0234,5"),
    (None, "de-CH", "de", "de_CH", "99.2%", "1'234.5"),  # Swiss German: Swiss numbers
    (None, "es-419", "es", "es_419", "99.2%", "1,234.5"),  # Latin American Spanish
    (None, "DE", "de", "de", "99,2\xa0%", "1.234,5"),
    (None, "fr", "en", "en", "99.2%", "1,234.5"),  # not offered: English, English numbers
    (None, None, "en", "en", "99.2%", "1,234.5"),  # the client didn't say
    (None, "xx-YY", "en", "en", "99.2%", "1,234.5"),
    ("es", "ru", "es", "es", "99,2\xa0%", "1.234,5"),  # the /language choice wins
    ("de", "de-AT", "de", "de_AT", "99,2\xa0%", "1.234,5"),
    ("zz", "ru", "ru", "ru", "99,2\xa0%", "1\xa0234,5"),  # a stored value no longer offered
])
def test_the_language_and_the_number_formats(chosen: str | None, code: str | None,
                                             language: str, locale: str, percent: str,
                                             number: str) -> None:
    tr = i18n.translator(chosen, code)
    assert (tr.language, str(tr.locale)) == (language, locale)
    assert tr.percent(0.9923) == percent
    assert tr.number(1234.5, 1) == number


def test_every_recognizer_error_is_said_in_the_users_language() -> None:
    """model/ words its errors in English with a code; each code the recognizer gives has a
    translated text (a new code in model/ fails here until it has one)."""
    de = i18n.translator("de")
    cases = {
        ("not_an_image", preprocess.NOT_AN_IMAGE):
            "Diese Datei ist kein Bild, das ich lesen kann.",
        ("damaged", preprocess.DAMAGED):
            "Die Bilddatei ist beschädigt oder unvollständig, deshalb kann ich sie nicht lesen.",
        ("too_small", preprocess.TOO_SMALL): "Das Bild ist zu klein für eine Ziffer.",
        ("too_large", preprocess.TOO_LARGE.format(size=" (400 megapixels)")):
            "Das Bild ist zu groß (400 Megapixel); schick bitte ein Foto unter 40 Megapixel.",
        ("too_large", preprocess.TOO_LARGE.format(size=" (30000×20)")):
            "Das Bild ist zu groß (30000×20); schick bitte ein Foto unter 40 Megapixel.",
        ("too_large", preprocess.TOO_LARGE.format(size="")):
            "Das Bild ist zu groß; schick bitte ein Foto unter 40 Megapixel.",
        ("failed", "I couldn't process that image, sorry."):
            "Dieses Bild konnte ich leider nicht verarbeiten.",
    }
    for (code, english), german in cases.items():
        result = Result("error", error=english, error_code=code)
        assert replies.image_error(de, result) == german
        assert replies.image_error(i18n.translator("en"), result) == english  # as model/ says
    # the codes the recognizer really gives, from real files
    rec = Recognizer()
    assert rec.recognize(b"no image").error_code == "not_an_image"
    assert rec.recognize(tiny_png()).error_code == "too_small"
    assert rec.recognize(huge_png()).error_code == "too_large"
    # an unknown code gets the general answer
    unknown = Result("error", error="Something new in model/.", error_code="new")
    assert replies.image_error(de, unknown) == de(replies.UNREADABLE)
    assert replies.image_error(i18n.translator("en"), unknown) == "Something new in model/."


@pytest.mark.parametrize("language", OTHERS)
async def test_a_speaker_gets_start_a_reading_no_digit_and_stats_in_their_language(
    api: BotApiStandIn, app: BotApplication, language: str
) -> None:
    tr = i18n.translator(language)
    user = 600 + OTHERS.index(language)
    api.add_user(user, language_code=language)
    start = await ask_async(api, user, lambda: api.send_command(user, "start"))
    assert start.text == replies.help_text(tr) and start.text.startswith(HELLO[language])

    image, label = digit_photo(0)
    reply = await api.wait_reply(user, api.send_photo(user, image), timeout=REPLY_S)
    ask_line = tr.gettext("Did I read it right? Tap ✅ or the right digit.")
    assert re.fullmatch(rf"{label} · {SURE[language]}\n(.*\n)?{re.escape(ask_line)}",
                        reply.text), reply.text

    blank = await api.wait_reply(user, api.send_photo(user, blank_photo()), timeout=REPLY_S)
    assert blank.text == replies.no_digit(tr) and blank.text != replies.no_digit(EN)

    number = await api.wait_reply(user, api.send_photo(user, number_photo()), timeout=REPLY_S)
    labels = [b["text"] for row in number.params["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == [tr.gettext("✅ Right"), tr.gettext("✏️ Correct")]
    assert labels != ["✅ Right", "✏️ Correct"]

    stats = await ask_async(api, user, lambda: api.send_command(user, "stats"))
    first, photos, share, median = stats.text.splitlines()
    assert first.startswith(tr.gettext(
        "Model v{version} · MNIST test accuracy {accuracy} · trained {date}").split("{")[0])
    assert re.search(r"\d+,\d\d\xa0%", first), first  # 99,66 %
    assert photos == tr.gettext("Photos read: {photos} · users: {users}").format(
        photos=3, users=1)
    assert share == tr.gettext("Readings confirmed correct: {share}").format(
        share=tr.gettext("no feedback yet"))
    assert re.fullmatch(re.escape(tr.gettext("Median recognition time: {median}")).replace(
        re.escape("{median}"), r"\d+ (ms|мс)"), median), median
    assert api.commands_by_language[language] == [
        c.to_dict() for c in replies.bot_commands(tr)]
    assert api.commands_by_language[language] != api.commands



async def test_bad_files_are_explained_in_the_users_language(api: BotApiStandIn,
                                                            app: BotApplication) -> None:
    user = 610
    api.add_user(user, language_code="es-419")
    es = i18n.translator("es")
    for send, expected in (
        (lambda: api.send_document(user, b"", "empty.png", "image/png"),
         "Ese archivo no es una imagen que pueda leer."),
        (lambda: api.send_document(user, tiny_png(), "tiny.png", "image/png"),
         "Esa imagen es demasiado pequeña para contener un dígito."),
        (lambda: api.send_document(user, huge_png(), "huge.png", "image/png"),
         "Esa imagen es demasiado grande (400 megapíxeles); envía una foto de menos de 40 "
         "megapíxeles."),
        (lambda: api.send_document(user, b"%PDF-1.4\n", "scan.pdf", "application/pdf"),
         es(replies.PDF)),
        (lambda: api.send_text(user, "hola"), es(replies.TEXT_ONLY)),
        (lambda: api.send_command(user, "frobnicate"), replies.unknown_command(es, "/frobnicate")),
        (lambda: api.send_command(user, "retrain", "1"),
         "Lo siento, /retrain es solo para los administradores del bot."),
    ):
        reply = await ask_async(api, user, send)
        assert reply.text == expected


# --- /language ---------------------------------------------------------------------------


async def test_the_language_menu_switches_and_refuses_forged_buttons(
    api: BotApiStandIn, app: BotApplication
) -> None:
    user = 620
    api.add_user(user, language_code="ru")
    menu = await ask_async(api, user, lambda: api.send_command(user, "language"))
    assert menu.text == "Выберите язык:"
    assert buttons(menu) == ["lang:en", "lang:ru", "lang:de", "lang:es"]
    names = [b["text"] for b in menu.params["reply_markup"]["inline_keyboard"][0]]
    assert names == ["English", "✓ Русский", "Deutsch", "Español"]  # each in itself
    mid = menu.result["message_id"]
    for forged in ("lang:fr", "lang:xx", "lang:", "lang:ES", "lang:es;drop"):
        assert await press_async(api, user, mid, forged) == "Это не моя кнопка."
    answer = await press_async(api, user, mid, "lang:es")
    assert answer == "Listo: a partir de ahora te hablo en español."
    edit = await api.wait_message(user, lambda c: c.method == "editMessageText", timeout=REPLY_S)
    assert edit.text == answer  # the menu became the confirmation
    start = await ask_async(api, user, lambda: api.send_command(user, "help"))
    assert start.text == replies.help_text(i18n.translator("es"))
    assert app.bot_data.services.storage.language(user) == "es"
    # back to the language Telegram gives: choose it like any other
    assert await press_async(api, user, mid, "lang:ru") == (
        "Готово — теперь я говорю с вами по-русски.")
    await api.wait_message(user, lambda c: c.text.startswith("Готово"), timeout=REPLY_S)
    start = await ask_async(api, user, lambda: api.send_command(user, "start"))
    assert start.text.startswith(HELLO["ru"])


@pytest.fixture
def standalone_api() -> Iterator[BotApiStandIn]:
    """A stand-in of this test's own: one bot polls it, then another after a restart."""
    api = BotApiStandIn()
    with api.in_thread():
        yield api


def test_the_chosen_language_survives_a_restart(standalone_api: BotApiStandIn,
                                                tmp_path: Path) -> None:
    api, user = standalone_api, 630
    api.add_user(user, language_code="en")
    data_dir = tmp_path / "data"
    first = BotProcess(api, data_dir).start()
    try:
        menu = ask(api, user, lambda: api.send_command(user, "language"))
        assert press(api, user, menu.result["message_id"], "lang:de") == (
            "Erledigt — ab jetzt spreche ich Deutsch mit dir.")
    finally:
        first.stop_and_check_log()
    second = BotProcess(api, data_dir).start()  # a new process on the same DATA_DIR
    try:
        start = ask(api, user, lambda: api.send_command(user, "start"))
        assert start.text == replies.help_text(i18n.translator("de"))
        image, label = digit_photo(1)
        reply = ask(api, user, lambda: api.send_photo(user, image))
        assert reading(reply) == str(label) and " sicher\n" in reply.text
    finally:
        second.stop_and_check_log()
