"""The bot's languages: gettext catalogs (bot/locales, built with Babel) and locale formats.

Texts are English in the code (the msgids); `make i18n` extracts them, updates each
language's .po and compiles the .mo files that ship with the package. A user's language is
their choice from /language, else Telegram's `language_code` ("de-CH" -> German), else
English; numbers and percentages follow the user's locale ("99,2 %" in German).
"""

from __future__ import annotations

import contextlib
import gettext
from copy import copy
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.numbers import parse_pattern

DOMAIN = "digitbot"
LOCALES_DIR = Path(__file__).parent / "locales"
DEFAULT = "en"
# The languages offered by /language, each named in itself; "en" is the code's own text.
LANGUAGES = {"en": "English", "ru": "Русский", "de": "Deutsch", "es": "Español"}


def N_(message: str) -> str:
    """Mark a text for extraction; it is translated where it is used (tr(TEXT))."""
    return message


@dataclass(frozen=True)
class Translator:
    """One language's texts plus one locale's number formats. `tr(text)` translates."""

    language: str  # a key of LANGUAGES
    locale: Locale  # for numbers: the user's own locale when it speaks `language`
    catalog: gettext.NullTranslations = field(repr=False, compare=False)

    def __call__(self, message: str) -> str:
        return self.catalog.gettext(message)

    def gettext(self, message: str) -> str:
        return self.catalog.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.catalog.ngettext(singular, plural, n)

    def number(self, value: float, digits: int = 0) -> str:
        """1234.5 -> '1,234.5' (en), '1.234,5' (de), '1 234,5' (ru): `digits` decimals."""
        return _fixed(self.locale.decimal_formats[None].pattern, value, digits, self.locale)

    def percent(self, fraction: float, digits: int = 1) -> str:
        """0.992 -> '99.2%' (en), '99,2 %' (de, with a no-break space): `digits` decimals."""
        return _fixed(self.locale.percent_formats[None].pattern, fraction, digits, self.locale)


def _fixed(pattern: str, value: float, digits: int, locale: Locale) -> str:
    """`value` in the locale's own pattern (grouping, symbols, spacing) with exactly `digits`
    decimals."""
    parsed = copy(parse_pattern(pattern))
    parsed.frac_prec = (digits, digits)
    return parsed.apply(value, locale)


def language_of(code: str | None) -> str | None:
    """The offered language a Telegram language_code ("es-419", "de_CH", "RU") speaks."""
    if not code:
        return None
    primary = code.replace("_", "-").split("-")[0].lower()
    return primary if primary in LANGUAGES else None


def translator(chosen: str | None = None, language_code: str | None = None) -> Translator:
    """The user's translator: their /language choice, else their Telegram language, else
    English. Numbers use their Telegram locale when it is that language (de-CH: "99.2%")."""
    language = chosen if chosen in LANGUAGES else language_of(language_code) or DEFAULT
    assert language is not None
    regional = language_code if language_of(language_code) == language else None
    return _translator(language, regional)


@lru_cache(maxsize=256)  # keyed by the clients' language codes: a few dozen in practice
def _translator(language: str, regional: str | None) -> Translator:
    locale = Locale.parse(language)
    if regional:
        # an unknown region keeps the language's own formats
        with contextlib.suppress(ValueError, UnknownLocaleError):
            locale = Locale.parse(regional.replace("_", "-"), sep="-")
    return Translator(language, locale, catalog(language))


@cache
def catalog(language: str) -> gettext.NullTranslations:
    """The compiled catalog of a language (English: the code's own texts)."""
    if language == DEFAULT:
        return gettext.NullTranslations()
    # fallback=False: a missing .mo is a packaging error, not a reason to answer in English
    return gettext.translation(DOMAIN, LOCALES_DIR, languages=[language])
