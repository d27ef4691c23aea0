"""Correcting a number: what the user typed, checked against the shape of the reading.

The reading "12\\n345" has lines of 2 and 3 digits; the answer must have the same digits per
line ("12\\n346"), or all of them on one line ("12346", "12 346"): either way every digit gets
its label. Any Unicode decimal digit counts (٣ is 3); other characters (spaces, dots,
commas) separate nothing and are ignored.
"""

from __future__ import annotations

import unicodedata

PROMPT_TTL_S = 15 * 60  # how long the bot waits for the typed number after ✏️ Correct
MAX_DIGITS = 64  # longer readings get no buttons (and their crops aren't kept)


def digits_per_line(text: str) -> list[list[int]]:
    """The decimal digits of each line that has any."""
    lines = [[unicodedata.decimal(ch) for ch in line if ch.isdecimal()]
             for line in text.splitlines()]
    return [line for line in lines if line]


def labels_for(text: str, expected: list[int]) -> list[int] | None:
    """The typed digits in reading order when they fit the reading's lines
    (`expected`: digits per line), else None."""
    lines = digits_per_line(text)
    if [len(line) for line in lines] == expected or (
        len(lines) == 1 and len(lines[0]) == sum(expected)
    ):
        return [d for line in lines for d in line]
    return None


def looks_like_a_number(text: str) -> bool:
    """Digits and separators only: an answer, not chatter (groups take only these unasked)."""
    return any(ch.isdecimal() for ch in text) and all(
        ch.isdecimal() or ch.isspace() or ch in ".,'’-_/·" for ch in text
    )
