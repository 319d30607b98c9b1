"""Dates and times as tickets print them and OCR reads them (see :mod:`plugins.template_values`).

Dates come back as ISO ``YYYY-MM-DD``. A numeric date whose parts could be read either way
("03/04/2025") is read in the template's ``date_order`` (MDY, DMY or YMD; the order of month and
day is what counts when the year is written in full); one that can only be read one way (a day
over 12) is read that way whatever the order. Dotted dates ("05.01.2025") are day first by
convention: where that disagrees with the template's order the read is ambiguous, and its quality
low. A two-digit year is the year closest to today (within 50 years). Times come back as ``HH:MM``.
"""

from __future__ import annotations

import re
from datetime import date

from plugins.template_numbers import AMBIGUOUS, CORRECTED, Parsed, fix_digits

DATE_ORDERS = ("MDY", "DMY", "YMD")

# digits OCR reads in place of letters, in a word (month names)
LETTER_CONFUSIONS = str.maketrans({"0": "o", "1": "l", "|": "l", "5": "s", "8": "b"})
MONTHS = {name: number for number, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
     ("dec", "december")], start=1) for name in names}

_PART = r"[0-9OoDQlIi|SB]"
_YEAR = rf"(?:{_PART}{{4}}|{_PART}{{2}}(?![0-9:]))"  # a two-digit year is not the hour of a time
_MONTH_WORD = r"[A-Za-z][A-Za-z015|]{2,8}"
_ISO_DATE = re.compile(rf"({_PART}{{4}})\s?[-/.]\s?({_PART}{{1,2}})\s?[-/.]\s?({_PART}{{1,2}})(?![0-9])")
_NUMERIC_DATE = re.compile(rf"(?<![0-9])({_PART}{{1,2}})(\s?[-/.]\s?)({_PART}{{1,2}})(\s?[-/.]\s?)"
                           rf"({_PART}{{4}}|{_PART}{{2}})(?![0-9])")
_DAY_MONTH_YEAR = re.compile(rf"(?<![0-9])({_PART}{{1,2}})(?:st|nd|rd|th)?[\s.-]*({_MONTH_WORD})\.?,?[\s.-]*"
                             rf"({_YEAR})(?![0-9])")
# the day and the year apart ("Feb 2025" is no February 20, 2025)
_MONTH_DAY_YEAR = re.compile(rf"({_MONTH_WORD})\.?\s*({_PART}{{1,2}})(?:st|nd|rd|th)?(?:\s*[,.]\s*|\s+)({_YEAR})"
                             rf"(?![0-9])")
_MERIDIEM = r"([AaPp]\.?\s?[Mm]\.?)(?![A-Za-z])"
# after a time with minutes, "a" or "p" alone is a meridiem too ("7:45p", "7:45 p.")
_TIME = re.compile(r"(?<![0-9])([0-9OoIl|]{1,2})\s?[:.h]\s?([0-9OoIl|]{2})(?:\s?[:.]\s?[0-9OoIl|]{2})?"
                   r"(?:\s*([AaPp]\.?\s?[Mm]\.?(?![A-Za-z])|[AaPp]\.?(?![A-Za-z0-9-])))?")
# "2 PM", "745 am", and glued to the digits "2p", "745a"
_TIME_WITH_MERIDIEM = re.compile(rf"(?<![A-Za-z0-9:.])([0-9OoIl|]{{1,4}})"
                                 rf"(?:\s*{_MERIDIEM}|([AaPp])\.?(?![A-Za-z0-9-]))")
# "1405" first in its place, alone or before a word ("0745 Time Out: 0912")
_TIME_DIGITS = re.compile(r"^[\s:.=-]*([0-9OoIl|]{4})(?:\s*(?:h|hrs?|hours)\.?)?(?=\s+[A-Za-z]|\s*$)", re.IGNORECASE)


def full_year(year: int, today: date | None = None) -> int:
    """A two-digit year as the year closest to today's (a tie goes to the past); others as they are."""
    if year >= 100:
        return year
    now = (today or date.today()).year
    return min((century + year for century in (now // 100 * 100 - 100, now // 100 * 100, now // 100 * 100 + 100)),
               key=lambda full: (abs(full - now), full > now))


def _month(word: str) -> int | None:
    return MONTHS.get(word.lower().translate(LETTER_CONFUSIONS).rstrip("."))


def _digits(*parts: str) -> tuple[list[int], bool]:
    fixed = [fix_digits(part) for part in parts]
    return [int(text) for text, _ in fixed], any(corrected for _, corrected in fixed)


def _numeric(match: re.Match[str], order: str) -> tuple[int, int, int, bool, bool]:
    """Year, month, day of a numeric date with the year last or (YMD, two digits each) first;
    whether confusions were corrected; whether the reading is a guess between two."""
    first, sep1, second, sep2, last = match.groups()
    (a, b, c), corrected = _digits(first, second, last)
    dotted = "." in sep1 and "." in sep2
    if order == "YMD" and len(last) == 2 and not dotted:
        return a, b, c, corrected, False
    day_first = dotted or order == "DMY"
    day, month = (a, b) if day_first else (b, a)
    if month > 12 >= day:  # only one reading is a date
        return c, day, month, corrected, False
    ambiguous = dotted and order != "DMY" and a != b and month <= 12 and day <= 12
    return c, month, day, corrected, ambiguous


def _date_candidates(text: str, order: str, today: date | None) -> list[tuple[int, int, int, int, str, float]]:
    """Whatever in ``text`` is written as a date, valid or not, left to right: start, year, month,
    day, raw text, quality."""
    candidates: list[tuple[int, int, int, int, str, float]] = []
    for match in _ISO_DATE.finditer(text):
        (year, month, day), corrected = _digits(*match.groups())
        candidates.append((match.start(), year, month, day, match.group(0), CORRECTED if corrected else 1.0))
    for match in _NUMERIC_DATE.finditer(text):
        year, month, day, corrected, ambiguous = _numeric(match, order)
        quality = min(AMBIGUOUS if ambiguous else 1.0, CORRECTED if corrected else 1.0)
        candidates.append((match.start(), full_year(year, today), month, day, match.group(0), quality))
    for pattern, day_at, month_at in ((_DAY_MONTH_YEAR, 1, 2), (_MONTH_DAY_YEAR, 2, 1)):
        for match in pattern.finditer(text):
            month = _month(match.group(month_at))
            if month:
                (day, year), corrected = _digits(match.group(day_at), match.group(3))
                candidates.append((match.start(), full_year(year, today), month, day, match.group(0),
                                   CORRECTED if corrected else 1.0))
    return sorted(candidates, key=lambda c: c[0])


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def parse_date(text: str, order: str = "MDY", today: date | None = None) -> Parsed | None:
    """An ISO date (YYYY-MM-DD) from 2026-03-14, 03/14/2026, 14.03.2026, 03/14/26, 14 Mar 2026,
    05-JAN-25, March 14, 2026 and the like; the leftmost wins. ``order`` reads ambiguous numeric
    dates (MDY, DMY or YMD); ``today`` places two-digit years (the local date by default)."""
    for _, year, month, day, raw, quality in _date_candidates(text, order, today):
        value = _valid(year, month, day)
        if value is not None:
            return value.isoformat(), raw.strip(), quality
    return None


def impossible_date(text: str, order: str = "MDY") -> str | None:
    """The text of a date written in full but impossible (02/30/2025, 2025-13-01), when ``text``
    holds no valid date; None otherwise."""
    candidates = _date_candidates(text, order, None)
    if not candidates or any(_valid(year, month, day) for _, year, month, day, _, _ in candidates):
        return None
    return candidates[0][4].strip()


def _clock(hour: int, minute: int, meridiem: str | None) -> tuple[int, int] | None:
    meridiem = (meridiem or "").lower().replace(".", "").replace(" ", "")[:1]  # "pm", "p.m." or "p"
    if meridiem and not 1 <= hour <= 12:
        return None
    if meridiem == "p" and hour < 12:
        hour += 12
    if meridiem == "a" and hour == 12:
        hour = 0
    return (hour, minute) if hour < 24 and minute < 60 else None


def parse_time(text: str) -> Parsed | None:
    """HH:MM (24 hours) from 14:05, 2:05 PM, 7:45p, 07.45, 14h05, 14:05:30, 2 PM, 745 am, 2p, and
    1405 or 0745 first in the text, alone or before a word (four digits among others could be a
    year). A lone "a" or "p" after a time is its meridiem; after a 24-hour time ("14:05 A") it is
    some other letter, left out."""
    for match in _TIME.finditer(text):
        (hour, minute), corrected = _digits(match.group(1), match.group(2))
        meridiem, raw = match.group(3), match.group(0)
        clock = _clock(hour, minute, meridiem)
        if clock is None and meridiem and len(meridiem.rstrip(".")) == 1:  # "14:05 A": a letter, not a meridiem
            clock, raw = _clock(hour, minute, None), text[match.start():match.start(3)]
        if clock:
            return f"{clock[0]:02d}:{clock[1]:02d}", raw.strip(), CORRECTED if corrected else 1.0
    for match in (*_TIME_WITH_MERIDIEM.finditer(text), *_TIME_DIGITS.finditer(text)):
        digits = match.group(1)
        (number,), corrected = _digits(digits)
        hour, minute = (number, 0) if len(digits) <= 2 else divmod(number, 100)
        clock = _clock(hour, minute, (match.group(2) or match.group(3)) if match.re is _TIME_WITH_MERIDIEM else None)
        if clock:
            raw = match.group(0).strip().lstrip(":.=- ")
            return f"{clock[0]:02d}:{clock[1]:02d}", raw, CORRECTED if corrected else 1.0
    return None
