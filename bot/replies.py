"""What the bot says: help texts, reading captions, the feedback keyboard and its data."""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.storage import LiveStats, ModelVersion
from model.recognize import Result

TIPS = (
    "Tips for a good photo:\n"
    "• dark ink (a marker or felt pen) on plain white paper\n"
    "• fill most of the picture with the writing, digits side by side on one line\n"
    "• good light, no shadow across the paper, hold the phone steady"
)
HELP = (
    "I read handwritten digits and numbers from photos. Send me a photo (or an image file) "
    "and I'll reply with what I read and how sure I am.\n\n"
    f"{TIPS}\n\n"
    "Under a single digit you get buttons: ✅ if I read it right, or the right digit if not. "
    "Your answers teach the next version of my model.\n\n"
    "/stats — my model's accuracy, training curves and live figures\n"
    "/forget — delete everything I have stored about you\n"
    "/help — this message"
)
ADMIN_HELP = "\n\nAdmins: /retrain [EPOCHS], /models, /rollback"
NO_DIGIT = "I couldn't find any digit in this photo.\n\n" + TIPS
NOT_AN_IMAGE = (
    "I can only read images (JPEG, PNG, WebP, …). Please send a photo of the handwritten digits."
)
PDF = (
    "That's a PDF — I can't read those. Please send a photo or a screenshot of the page, "
    "ideally cropped to the handwritten digits."
)
UNREADABLE = (
    "I couldn't open that picture — the file may be damaged or in a format I don't know. "
    "Please send it again as a regular photo."
)
TOO_BIG = "That file is too big for me ({size:.1f} MB; up to {limit:.0f} MB). Please send a photo."
TEXT_ONLY = (
    "I read digits from photos — send me a photo of a handwritten digit or number. /help has tips."
)
UNKNOWN_COMMAND = "I don't know the command {command}. Try /help."
QUEUED = (
    "You sent me several photos — I'm reading them one by one ({waiting} waiting), so others "
    "get their turn too. Every photo will be answered."
)
SORRY = "Sorry, something went wrong while handling that. Please try again in a moment."

NOTHING_TO_FORGET = "I have nothing stored about you — nothing to delete."


def forgotten(gone: dict[str, int]) -> str:
    """/forget's answer: how many records went, by kind."""
    total = sum(gone.values())
    if not total:
        return NOTHING_TO_FORGET
    kinds = ", ".join(f"{what}: {n}" for what, n in gone.items() if n)
    return (f"🗑 Done: I deleted {total} records about you ({kinds}). The totals in /stats "
            "are anonymous counts and stay.")


# Feedback buttons: "fb:<prediction id>:<digit>" (a few bytes of Telegram's 64).
FEEDBACK_RE = re.compile(r"fb:([1-9][0-9]{0,17}):([0-9])")


def feedback_keyboard(prediction_id: int, reading: int) -> InlineKeyboardMarkup:
    """✅ for the reading, then 0–9 to correct it."""
    confirm = InlineKeyboardButton(f"✅ {reading}", callback_data=f"fb:{prediction_id}:{reading}")
    digits = [
        InlineKeyboardButton(str(d), callback_data=f"fb:{prediction_id}:{d}") for d in range(10)
    ]
    return InlineKeyboardMarkup([[confirm], digits[:5], digits[5:]])


def parse_feedback(data: str | None) -> tuple[int, int] | None:
    """(prediction id, digit) from well-formed callback data, else None."""
    match = FEEDBACK_RE.fullmatch(data or "")
    return (int(match[1]), int(match[2])) if match else None


def reading_confidence(result: Result) -> float:
    """A reading is as sure as its least sure digit."""
    return min(d.confidence for d in result.digits)


def is_doubtful(result: Result, threshold: float) -> bool:
    return reading_confidence(result) < threshold


def reading_text(result: Result, threshold: float) -> str:
    """'7 · 99.2% sure' first (the reading is the first number), then details."""
    lines = [f"{result.text} · {reading_confidence(result) * 100:.1f}% sure"]
    if len(result.digits) > 1:
        lines.append("digits: " + ", ".join(f"{d.digit} {d.confidence:.0%}" for d in result.digits))
    for position, digit in enumerate(result.digits, start=1):
        if digit.confidence >= threshold:
            continue
        alternatives = [(alt, p) for alt, p in digit.alternatives if alt != digit.digit]
        others = ", ".join(f"{alt} ({p:.0%})" for alt, p in alternatives)
        where = f"digit {position}" if len(result.digits) > 1 else "it"
        if others:
            lines.append(f"Not sure — {where} could also be: {others}")
    if len(result.digits) == 1:
        lines.append("Did I read it right? Tap ✅ or the right digit.")
    return "\n".join(lines)


def feedback_mark(reading: str, label: int) -> str:
    if reading == str(label):
        return "✅ Confirmed — thank you!"
    return f"✏️ Corrected to {label} — thank you, I'll learn from it."


def stats_caption(
    version: ModelVersion, metrics: dict, trained: str, live: LiveStats
) -> str:
    accuracy = metrics.get("test_accuracy", version.test_accuracy)
    acc = "n/a" if accuracy is None else f"{accuracy * 100:.2f}%"
    share = live.confirmed_share
    share_text = "no feedback yet" if share is None else (
        f"{share * 100:.1f}% ({live.confirmed} of {live.confirmed + live.corrected})"
    )
    median = "n/a" if live.median_ms is None else f"{live.median_ms:.0f} ms"
    return (
        f"Model v{version.version} · MNIST test accuracy {acc} · trained {trained}\n"
        f"Photos read: {live.photos} · users: {live.users}\n"
        f"Readings confirmed correct: {share_text}\n"
        f"Median recognition time: {median}"
    )


def models_text(versions: list[ModelVersion]) -> str:
    lines = ["Model versions:"]
    for v in versions:
        acc = "n/a" if v.test_accuracy is None else f"{v.test_accuracy * 100:.2f}%"
        mark = " ← serving" if v.active else ""
        when = (v.created_at or "")[:10]
        note = f" ({v.note})" if v.note else ""
        lines.append(f"v{v.version} · {acc} · {when}{note}{mark}")
    return "\n".join(lines)
