"""Value parsers for template fields: id, text, date, time, number, money, weight.

Each parser takes the text found for a field (after its label, or below it) and returns
``(value, raw, quality)`` or ``None``: ``raw`` is the text the value was read from, ``quality``
in 0..1 says how cleanly it parsed (1.0 clean; lower when OCR confusions such as O/0, l/1, I/1,
S/5, B/8 or a colon for a decimal point had to be corrected, and lower still when the text could
be read more than one way). Numbers, money and weights live in :mod:`plugins.template_numbers`,
dates and times in :mod:`plugins.template_dates`.
"""

from __future__ import annotations

import re
from typing import Callable

from plugins.template_dates import DATE_ORDERS, LETTER_CONFUSIONS, MONTHS, full_year, parse_date, parse_time
from plugins.template_numbers import (
    AMBIGUOUS,
    CORRECTED,
    DIGIT_CONFUSIONS,
    NUMBER_TOKEN,
    POUNDS_PER,
    UNIT_WORDS,
    Parsed,
    convert_weight,
    fix_digits,
    number_from,
    parse_money,
    parse_number,
    parse_weight,
    pattern_match,
    unit_after,
    unit_in,
)

__all__ = [
    "AMBIGUOUS", "CORRECTED", "DATE_ORDERS", "DIGIT_CONFUSIONS", "LETTER_CONFUSIONS", "MONTHS", "NUMBER_TOKEN",
    "POUNDS_PER", "UNIT_WORDS", "Parsed", "convert_weight", "fix_digit_runs", "fix_digits", "full_year",
    "number_from", "parse_date", "parse_id", "parse_money", "parse_number", "parse_text", "parse_time",
    "parse_value", "parse_weight", "unit_after", "unit_in",
]

_D = "0-9OoDQlIi|!SsBZz"  # a digit, or a letter OCR reads in its place
_DIGIT_RUN = re.compile(rf"[{_D}]+")
_ID_TOKEN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9/]|- ?(?=[A-Za-z0-9]))*")
# a plate written in two parts one space apart: letters ("AB", "KA-ZT"), then digits ("123", "881")
_PLATE = re.compile(r"(?<![A-Za-z0-9-])(?P<letters>[A-Z]{1,3}(?:-[A-Z]{1,3})?) (?P<digits>[0-9]{2,5}[A-Z]?)"
                    r"(?![A-Za-z0-9/-])")


def fix_digit_runs(text: str) -> tuple[str, bool]:
    """Like :func:`fix_digits`, but only in runs that hold a real digit ("1O4857-B" → "104857-B")."""
    fixed = _DIGIT_RUN.sub(lambda match: fix_digits(match.group(0))[0] if re.search("[0-9]", match.group(0))
                           else match.group(0), text)
    return fixed, fixed != text


def parse_id(text: str, pattern: str | None = None) -> Parsed | None:
    """An identifier: the template's pattern, else the first token ("104857", "TR-4187"), which
    must hold a digit: a word there ("Nbr", "Trailer") is no id. A plate in two parts one space
    apart, letters then digits ("AB 123", "KA-ZT 881"), is one id as written; two or more spaces
    (or a tab) between words is a gap between columns, never inside an id.

    A mostly numeric id has letters read for digits corrected, keeping a letter prefix ("T-").
    Digits split by one space ("5588 12") are joined, as an ambiguous read."""
    if pattern:
        match = pattern_match(pattern, text)
        if match is not None:
            return match.group(0), match.group(0), 1.0
        fixed, _ = fix_digit_runs(text)  # letters for digits only among digits: "ABC" holds no "8"
        match = pattern_match(pattern, fixed)
        return (match.group(0), match.group(0), CORRECTED) if match else None
    match = _ID_TOKEN.search(text)
    if match is None:
        return None
    plate = _PLATE.match(text, match.start())
    if plate is not None and len(plate.group("letters")) >= 2:
        return plate.group(0), plate.group(0), 1.0
    if not re.search("[0-9]", match.group(0)):
        return None
    raw, quality = match.group(0), 1.0
    split = re.match(r" [0-9]+(?![A-Za-z0-9/-])", text[match.end():]) if raw.isdigit() else None
    if split is not None:
        raw, quality = raw + split.group(0), AMBIGUOUS
    token = re.sub(r"-\s", "-", raw).replace(" ", "")
    head = re.match(r"[A-Za-z]{1,4}-", token)  # a letter prefix such as "TR-" stays letters
    body = token[head.end():] if head else token
    if sum(c.isdigit() for c in body) * 2 < len(body):
        return token.upper(), raw, quality
    fixed, corrected = fix_digit_runs(body)
    return ((head.group(0) if head else "") + fixed).upper(), raw, min(quality, CORRECTED if corrected else 1.0)


def parse_text(text: str, pattern: str | None = None) -> Parsed | None:
    """Free text, spaces collapsed and punctuation trimmed at the ends; a "#" before a word or a
    number stays ("#57 Stone")."""
    if pattern:
        match = pattern_match(pattern, text)
        return (match.group(0).strip(), match.group(0), 1.0) if match else None
    cleaned = re.sub(r"\s+", " ", text).strip()
    while True:  # punctuation at the ends, but for a full stop after a word ("Co.")
        trimmed = re.sub(r"^(?:(?!#\w)[^\w(\"'])+|(?<![\w.])\.+$|[^\w).\"']+$", "", cleaned).strip()
        for opening, closing in ("()", '""', "''"):  # a bracket or quote without its pair is noise
            if trimmed.count(opening) + trimmed.count(closing) == 1:
                trimmed = trimmed.strip(opening + closing).strip()
        if trimmed == cleaned:
            break
        cleaned = trimmed
    return (cleaned, " ".join(text.split()), 1.0) if re.search(r"[A-Za-z0-9]", cleaned) else None


PARSERS: dict[str, Callable[[str], Parsed | None]] = {
    "number": parse_number, "money": parse_money, "time": parse_time,
}


def parse_value(kind: str, text: str, pattern: str | None = None, unit: str = "lb", date_order: str = "MDY",
                assumed_unit: str | None = None) -> Parsed | None:
    """The value of a field of type ``kind`` in ``text``, or None when there is none.

    ``unit`` is a weight's unit; ``assumed_unit`` the unit of a weight written without one (from
    its label, "Gross (kg)"); ``date_order`` reads ambiguous numeric dates (MDY, DMY or YMD)."""
    if kind == "id":
        return parse_id(text, pattern)
    if kind == "text":
        return parse_text(text, pattern)
    if kind == "weight":
        return parse_weight(text, unit, pattern, assumed_unit)
    if pattern:
        match = pattern_match(pattern, text) or pattern_match(pattern, fix_digits(text)[0])
        if match is None:
            return None
        text = match.group(0)
    if kind == "date":
        return parse_date(text, date_order)
    return PARSERS[kind](text)
