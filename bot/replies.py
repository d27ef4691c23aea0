"""What the bot says: help texts, readings, the buttons under them and their data.

Every text a user sees is an English msgid marked for gettext (N_ or tr.gettext/ngettext with
a literal) and is translated where it is used, with `tr`, the user's Translator
(bot/i18n.py). Admin-only texts (/retrain, /models, /rollback) stay English: they are the
operator's tools, like the logs.
"""

from __future__ import annotations

import re

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import LANGUAGES, N_, Translator
from bot.storage import LiveStats, ModelVersion
from model import preprocess
from model.recognize import Result

TIPS = N_(
    "Tips for a good photo:\n"
    "• dark ink (a marker or felt pen) on plain white paper\n"
    "• fill most of the picture with the writing, digits side by side on one line\n"
    "• good light, no shadow across the paper, hold the phone steady"
)
HELP_INTRO = N_(
    "I read handwritten digits and numbers from photos. Send me a photo (or an image file) "
    "and I'll reply with what I read and how sure I am."
)
HELP_FEEDBACK = N_(
    "Under a single digit you get buttons: ✅ if I read it right, or the right digit if not. "
    "Under a number: ✅, or ✏️ Correct to type the right number. "
    "Your answers teach the next version of my model."
)
HELP_GROUPS = N_(
    "In a group, mention me in the photo's caption or reply to one of my messages with the "
    "photo."
)
HELP_COMMANDS = N_(
    "/stats — my model's accuracy, training curves and live figures\n"
    "/language — choose my language\n"
    "/forget — delete everything I have stored about you\n"
    "/help — this message"
)
ADMIN_HELP = N_("Admins: /retrain [EPOCHS], /models, /rollback")
NO_DIGIT = N_("I couldn't find any digit in this photo.")
NOT_AN_IMAGE = N_(
    "I can only read images (JPEG, PNG, WebP, …). Please send a photo of the handwritten digits."
)
PDF = N_(
    "That's a PDF — I can't read those. Please send a photo or a screenshot of the page, "
    "ideally cropped to the handwritten digits."
)
UNREADABLE = N_(
    "I couldn't open that picture — the file may be damaged or in a format I don't know. "
    "Please send it again as a regular photo."
)
TEXT_ONLY = N_(
    "I read digits from photos — send me a photo of a handwritten digit or number. /help has tips."
)
SORRY = N_("Sorry, something went wrong while handling that. Please try again in a moment.")
ADMINS_ONLY = N_("Sorry, {command} is only for the bot's admins.")
NOT_MINE = N_("That button isn't one of mine.")
NOT_YOURS = N_("This button doesn't belong to that reading.")
ALREADY_NOTED = N_("Already noted — thank you!")
CONFIRMED = N_("✅ Confirmed — thank you!")
CORRECTED = N_("✏️ Corrected to {label} — thank you, I'll learn from it.")

# The command menu (setMyCommands), one per language.
COMMANDS = (
    ("start", N_("What I do")),
    ("help", N_("How to take a good photo")),
    ("stats", N_("Model accuracy, training curves, live figures")),
    ("language", N_("Choose my language")),
    ("forget", N_("Delete everything stored about you")),
    ("retrain", N_("Admins: train a new model [EPOCHS]")),
    ("models", N_("Admins: model versions")),
    ("rollback", N_("Admins: back to the previous model")),
)

# Button data (a few bytes of Telegram's 64): "fb:<prediction>:<digit>" under a single digit,
# "nb:<prediction>:ok|fix" under a number, "lang:<code>" under /language.
FEEDBACK_RE = re.compile(r"fb:([1-9][0-9]{0,17}):([0-9])")
NUMBER_RE = re.compile(r"nb:([1-9][0-9]{0,17}):(ok|fix)")
LANGUAGE_RE = re.compile(r"lang:([a-z]{2})")


def bot_commands(tr: Translator) -> list[BotCommand]:
    return [BotCommand(command, tr(description)) for command, description in COMMANDS]


def help_text(tr: Translator, admin: bool = False) -> str:
    parts = [HELP_INTRO, TIPS, HELP_FEEDBACK, HELP_GROUPS, HELP_COMMANDS]
    if admin:
        parts.append(ADMIN_HELP)
    return "\n\n".join(tr(part) for part in parts)


def no_digit(tr: Translator) -> str:
    return f"{tr(NO_DIGIT)}\n\n{tr(TIPS)}"


def too_big(tr: Translator, size: int, limit: int) -> str:
    return tr.gettext(
        "That file is too big for me ({size} MB; up to {limit} MB). Please send a photo."
    ).format(size=tr.number(size / 2**20, 1), limit=tr.number(limit / 2**20))


def forgotten(tr: Translator, gone: dict[str, int]) -> str:
    """/forget's answer: how many records went, by kind (storage.USER_TABLES names them)."""
    total = sum(gone.values())
    if not total:
        return tr.gettext("I have nothing stored about you — nothing to delete.")
    kinds = ", ".join(f"{tr(what)}: {tr.number(n)}" for what, n in gone.items() if n)
    return tr.ngettext(
        "🗑 Done: I deleted {n} record about you ({kinds}). The totals in /stats are "
        "anonymous counts and stay.",
        "🗑 Done: I deleted {n} records about you ({kinds}). The totals in /stats are "
        "anonymous counts and stay.",
        total,
    ).format(n=tr.number(total), kinds=kinds)


def unknown_command(tr: Translator, command: str) -> str:
    return tr.gettext("I don't know the command {command}. Try /help.").format(command=command)


def queued(tr: Translator, waiting: int) -> str:
    return tr.gettext(
        "You sent me several photos — I'm reading them one by one ({waiting} waiting), so "
        "others get their turn too. Every photo will be answered."
    ).format(waiting=tr.number(waiting))


# --- the recognizer's errors ------------------------------------------------------------------

# model/ words its errors in English for the person who sent the file, with a code (Result.
# error_code) that the bot says in the user's language.
IMAGE_ERRORS = {
    "not_an_image": N_("That file isn't an image I can read."),
    "damaged": N_("That image file is damaged or incomplete, so I can't read it."),
    "too_small": N_("That image is too small to contain a digit."),
    "too_large": N_("That image is too large{size}; please send a photo under {limit} megapixels."),
    "failed": N_("I couldn't process that image, sorry."),
}
# TOO_LARGE carries a detail: " (400 megapixels)" from Pillow's count, or " (20000×20000)"
_TOO_LARGE = re.compile(re.escape(preprocess.TOO_LARGE).replace(re.escape("{size}"), "(.*)"))
_MEGAPIXELS = re.compile(r" \(([0-9]+) megapixels\)")
_SIDES = re.compile(r" \([0-9]+×[0-9]+\)")


def image_error_key(result: Result) -> str | None:
    """The key of a recognizer error (its error_code), or None for one the bot doesn't know."""
    return result.error_code if result.error_code in IMAGE_ERRORS else None


def image_error(tr: Translator, result: Result) -> str:
    """The recognizer's error in the user's language (unknown ones: a general answer, or the
    recognizer's own English text for an English speaker)."""
    key = image_error_key(result)
    if key is None:
        english = tr.language == "en" and result.error
        return result.error if english and result.error else tr(UNREADABLE)
    if key != "too_large":
        return tr(IMAGE_ERRORS[key])
    match = _TOO_LARGE.fullmatch(result.error or "")
    detail = match.group(1) if match else ""
    size = ""
    if megapixels := _MEGAPIXELS.fullmatch(detail):
        size = tr.gettext(" ({megapixels} megapixels)").format(
            megapixels=tr.number(int(megapixels.group(1))))
    elif _SIDES.fullmatch(detail):
        size = detail  # width×height reads the same in every language
    limit = tr.number(preprocess.MAX_PIXELS / 1e6)
    return tr(IMAGE_ERRORS["too_large"]).format(size=size, limit=limit)


# --- readings --------------------------------------------------------------------------------


def reading_confidence(result: Result) -> float:
    """A reading is as sure as its least sure digit."""
    return min(d.confidence for d in result.digits)


def is_doubtful(result: Result, threshold: float) -> bool:
    return reading_confidence(result) < threshold


def reading_text(tr: Translator, result: Result, threshold: float, ask: bool = True) -> str:
    """'7 · 99.2% sure' first (the reading is the first number; several lines of digits: one
    line each, then how sure), then details; `ask`: the line about the buttons."""
    sure = tr.percent(reading_confidence(result))
    lines = result.lines
    if len(lines) == 1:
        out = [tr.gettext("{reading} · {percent} sure").format(reading=lines[0], percent=sure)]
    else:
        out = [*lines, tr.gettext("{percent} sure").format(percent=sure)]
    if len(result.digits) > 1:
        by_line = [", ".join(f"{d.digit} {tr.percent(d.confidence, 0)}" for d in result.digits
                             if d.line == line) for line in sorted({d.line for d in result.digits})]
        out.append(tr.gettext("digits: {digits}").format(digits=" / ".join(by_line)))
    for position, digit in enumerate(result.digits, start=1):
        if digit.confidence >= threshold:
            continue
        others = ", ".join(f"{alt} ({tr.percent(p, 0)})" for alt, p in digit.alternatives
                           if alt != digit.digit)
        if not others:
            continue
        if len(result.digits) == 1:
            text = tr.gettext("Not sure — it could also be: {others}")
        elif len(lines) == 1:
            text = tr.gettext("Not sure — digit {position} could also be: {others}")
        else:
            position = 1 + sum(1 for d in result.digits[: position - 1] if d.line == digit.line)
            text = tr.gettext("Not sure — line {line}, digit {position} could also be: {others}")
        out.append(text.format(position=position, line=digit.line + 1, others=others))
    if not ask:
        pass
    elif len(result.digits) == 1:
        out.append(tr.gettext("Did I read it right? Tap ✅ or the right digit."))
    else:
        out.append(tr.gettext("Did I read it right? Tap ✅, or ✏️ Correct to type the right "
                              "number."))
    return "\n".join(out)


def feedback_keyboard(prediction_id: int, reading: int) -> InlineKeyboardMarkup:
    """✅ for the reading, then 0–9 to correct it."""
    confirm = InlineKeyboardButton(f"✅ {reading}", callback_data=f"fb:{prediction_id}:{reading}")
    digits = [
        InlineKeyboardButton(str(d), callback_data=f"fb:{prediction_id}:{d}") for d in range(10)
    ]
    return InlineKeyboardMarkup([[confirm], digits[:5], digits[5:]])


def number_keyboard(tr: Translator, prediction_id: int) -> InlineKeyboardMarkup:
    """✅ (all digits right) and ✏️ Correct (type the right number) under a number."""
    return InlineKeyboardMarkup([[
        InlineKeyboardButton(tr.gettext("✅ Right"), callback_data=f"nb:{prediction_id}:ok"),
        InlineKeyboardButton(tr.gettext("✏️ Correct"), callback_data=f"nb:{prediction_id}:fix"),
    ]])


def parse_feedback(data: str | None) -> tuple[int, int] | None:
    """(prediction id, digit) from well-formed callback data, else None."""
    match = FEEDBACK_RE.fullmatch(data or "")
    return (int(match[1]), int(match[2])) if match else None


def parse_number_button(data: str | None) -> tuple[int, str] | None:
    """(prediction id, "ok" or "fix") from well-formed callback data, else None."""
    match = NUMBER_RE.fullmatch(data or "")
    return (int(match[1]), match[2]) if match else None


def feedback_mark(tr: Translator, reading: str, label: int | str) -> str:
    """The line under a reading once the user confirmed it or gave the right answer."""
    if reading == str(label):
        return tr(CONFIRMED)
    return tr(CORRECTED).format(label=str(label).replace("\n", " "))


# --- correcting a number ------------------------------------------------------------------


def digit_count(tr: Translator, n: int) -> str:
    return tr.ngettext("{n} digit", "{n} digits", n).format(n=n)


def shape(tr: Translator, counts: list[int]) -> str:
    """[2, 3] -> '2 digits + 3 digits'; [] -> 'no digits'."""
    if not counts or not any(counts):
        return tr.gettext("no digits")
    return " + ".join(digit_count(tr, n) for n in counts)


def correction_prompt(tr: Translator, counts: list[int]) -> str:
    """Asks for the right number (the message carries a ForceReply)."""
    if len(counts) == 1:
        return tr.gettext("✏️ Which number is it? Reply to this message with the right one "
                          "({digits}).").format(digits=digit_count(tr, counts[0]))
    return tr.gettext("✏️ Which numbers are they? Reply to this message with the right ones, "
                      "one line each as in the photo ({shape}).").format(shape=shape(tr, counts))


def correction_retry(tr: Translator, expected: list[int], got: list[int]) -> str:
    return tr.gettext(
        "That doesn't fit: I need {expected}, and your message has {got}. Please reply again "
        "— or just send me a new photo."
    ).format(expected=shape(tr, expected), got=shape(tr, got))


def correction_thanks(tr: Translator, reading: str, labels: str) -> str:
    """The answer to a correction: what changed, or that the reading was right."""
    changed = sum(a != b for a, b in zip(reading.replace("\n", ""), labels.replace("\n", ""),
                                         strict=True))
    if not changed:
        return tr.gettext("✅ That's what I read — noted as correct, thank you!")
    return tr.ngettext(
        "✏️ Thank you! {n} digit corrected: {old} → {new}. I'll learn from it.",
        "✏️ Thank you! {n} digits corrected: {old} → {new}. I'll learn from it.",
        changed,
    ).format(n=changed, old=reading.replace("\n", " "), new=labels.replace("\n", " "))


CORRECTION_ASKED = N_("✏️ Reply with the right number.")
CORRECTION_EXPIRED = N_("That was a while ago — please tap ✏️ Correct under the reading again.")


# --- languages -------------------------------------------------------------------------------

CHOOSE_LANGUAGE = N_("Choose my language:")
LANGUAGE_SET = N_("Done — I'll speak English with you from now on.")


def language_keyboard(current: str) -> InlineKeyboardMarkup:
    """One button per language, named in itself; the current one ticked."""
    return InlineKeyboardMarkup([[
        InlineKeyboardButton(("✓ " if code == current else "") + name,
                             callback_data=f"lang:{code}")
        for code, name in LANGUAGES.items()
    ]])


def parse_language(data: str | None) -> str | None:
    match = LANGUAGE_RE.fullmatch(data or "")
    return match[1] if match and match[1] in LANGUAGES else None


# --- /stats and admins ---------------------------------------------------------------------


def stats_caption(
    tr: Translator, version: ModelVersion, metrics: dict, trained: str, live: LiveStats
) -> str:
    accuracy = metrics.get("test_accuracy", version.test_accuracy)
    na = tr.gettext("n/a")
    acc = na if accuracy is None else tr.percent(accuracy, 2)
    share = live.confirmed_share
    if share is None:
        share_text = tr.gettext("no feedback yet")
    else:
        share_text = tr.gettext("{percent} ({confirmed} of {total})").format(
            percent=tr.percent(share), confirmed=tr.number(live.confirmed),
            total=tr.number(live.confirmed + live.corrected))
    median = na if live.median_ms is None else tr.gettext("{ms} ms").format(
        ms=tr.number(live.median_ms))
    return "\n".join([
        tr.gettext("Model v{version} · MNIST test accuracy {accuracy} · trained {date}").format(
            version=version.version, accuracy=acc, date=trained),
        tr.gettext("Photos read: {photos} · users: {users}").format(
            photos=tr.number(live.photos), users=tr.number(live.users)),
        tr.gettext("Readings confirmed correct: {share}").format(share=share_text),
        tr.gettext("Median recognition time: {median}").format(median=median),
    ])


SCORE_NAMES = {"mnist": "MNIST", "writers": "writers", "corrections": "corrections"}


def models_text(versions: list[ModelVersion]) -> str:
    """Admins' /models: each version's MNIST test accuracy, date and note, and its scores on
    the promotion gate's held-out sets once a /retrain measured them."""
    lines = ["Model versions:"]
    for v in versions:
        acc = "n/a" if v.test_accuracy is None else f"{v.test_accuracy * 100:.2f}%"
        mark = " ← serving" if v.active else ""
        when = (v.created_at or "")[:10]
        note = f" ({v.note})" if v.note else ""
        lines.append(f"v{v.version} · {acc} · {when}{note}{mark}")
        if v.scores:
            lines.append("    held out: " + ", ".join(
                f"{SCORE_NAMES.get(name, name)} {accuracy * 100:.2f}% ({int(n)})"
                for name, (accuracy, n) in v.scores.items()))
    return "\n".join(lines)
