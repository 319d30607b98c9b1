"""Value parsers for template fields: id, text, date, time, number, money, weight.

Each parser takes the text found for a field (after its label, or below it) and returns
``(value, raw, quality)`` or ``None``: ``raw`` is the text the value was read from, ``quality``
in 0..1 says how cleanly it parsed (1.0 clean; lower when OCR confusions such as O/0, l/1, I/1,
S/5, B/8 or a colon for a decimal point had to be corrected).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Callable

Parsed = tuple[Any, str, float]

CORRECTED = 0.85  # quality of a value read only after correcting OCR confusions

# letters OCR reads in place of digits, in a numeric context
DIGIT_CONFUSIONS = str.maketrans({"O": "0", "o": "0", "D": "0", "Q": "0", "l": "1", "I": "1", "i": "1", "|": "1",
                                  "!": "1", "S": "5", "s": "5", "B": "8", "Z": "2", "z": "2"})
# digits OCR reads in place of letters, in a word (month names)
LETTER_CONFUSIONS = str.maketrans({"0": "o", "1": "l", "|": "l", "5": "s", "8": "b"})
MONTHS = {name: number for number, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
     ("dec", "december")], start=1) for name in names}

POUNDS_PER = {"lb": 1.0, "kg": 2.20462262185, "t": 2204.62262185, "ton": 2000.0}
UNIT_WORDS: tuple[tuple[str, str], ...] = (
    (r"short\s*tons?|s\.?\s*tons?|tons?|tn", "ton"),
    (r"tonnes?|metric\s*tons?|mt|t", "t"),
    (r"kgs?|kilograms?|kilos?|kq", "kg"),
    (r"lbs?\.?|[i1|]bs\.?|pounds?|#", "lb"),
)
_UNIT = re.compile("|".join(rf"(?P<u{n}>(?:{pattern})(?![a-z]))" for n, (pattern, _) in enumerate(UNIT_WORDS)))
# a unit glued to its number ("72,340lb", "18.7t"): a space goes in before it is read
_GLUED_UNIT = re.compile(r"(?<=[0-9])(?=(?:lbs?|[i1]bs|kgs?|tons?|tonnes?|tn|t)(?![a-z]))", re.IGNORECASE)

_D = "0-9OoDQlIi|!SsBZz"  # a digit, or a letter OCR reads in its place
# a number as OCR may misread it: digits (or letters confused with them) and separators, with at
# least one real digit, not glued to a word ("Soil" is no number, "5O,12O" and "23:93" are)
NUMBER_TOKEN = re.compile(rf"(?<![A-Za-z0-9])(?=[{_D},.:;]*[0-9])[{_D}](?:[{_D},.:;]*[{_D}])?(?![A-Za-z0-9])")
_PART = r"[0-9OoDQlIi|SB]"
_ISO_DATE = re.compile(rf"({_PART}{{4}})\s?[-/.]\s?({_PART}{{1,2}})\s?[-/.]\s?({_PART}{{1,2}})(?![0-9])")
_NUMERIC_DATE = re.compile(rf"(?<![0-9])({_PART}{{1,2}})\s?[-/.]\s?({_PART}{{1,2}})\s?[-/.]\s?({_PART}{{4}}|{_PART}{{2}})(?![0-9])")
_DAY_MONTH_YEAR = re.compile(rf"(?<![0-9])({_PART}{{1,2}})(?:st|nd|rd|th)?[\s.-]*([A-Za-z][A-Za-z015|]{{2,8}})\.?,?[\s.-]*({_PART}{{4}})")
_MONTH_DAY_YEAR = re.compile(rf"([A-Za-z][A-Za-z015|]{{2,8}})\.?\s*({_PART}{{1,2}})(?:st|nd|rd|th)?\s*[,.]?\s*({_PART}{{4}})")
_TIME = re.compile(r"(?<![0-9])([0-9OoIl|]{1,2})\s?[:.h]\s?([0-9OoIl|]{2})(?:\s?[:.]\s?[0-9OoIl|]{2})?\s*([AaPp]\.?\s?[Mm]\.?)?")
_DIGIT_RUN = re.compile(rf"[{_D}]+")
_ID_TOKEN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9/]|-\s?(?=[A-Za-z0-9]))*")


def convert_weight(value: float, unit: str, to_unit: str) -> float:
    """``value`` in ``unit`` as ``to_unit`` (lb, kg, t: tonne, ton: short ton), not rounded."""
    return value * POUNDS_PER[unit] / POUNDS_PER[to_unit]


def fix_digits(text: str) -> tuple[str, bool]:
    """Letters read for digits turned back into digits; and whether any was."""
    fixed = text.translate(DIGIT_CONFUSIONS)
    return fixed, fixed != text


def fix_digit_runs(text: str) -> tuple[str, bool]:
    """Like :func:`fix_digits`, but only in runs that hold a real digit ("1O4857-B" → "104857-B")."""
    fixed = _DIGIT_RUN.sub(lambda match: fix_digits(match.group(0))[0] if re.search("[0-9]", match.group(0))
                           else match.group(0), text)
    return fixed, fixed != text


def number_from(token: str, dot_groups_thousands: bool = False) -> tuple[float, bool] | None:
    """The number a token stands for, and whether OCR confusions were corrected.

    "72,340" and "72,340.5" are US numbers; "20,5" has a decimal comma; a colon or semicolon
    between digits is a misread separator ("23:93" is 23.93, "47:860" is 47860).
    ``dot_groups_thousands`` reads "72.340" as 72340 (weights in lb or kg are never that fine).
    """
    fixed, corrected = fix_digits(token.strip().replace("'", ""))
    if re.search(r"[:;]", fixed):
        corrected = True
        fixed = re.sub(r"[:;](?=[0-9]{3}(?![0-9]))", ",", fixed)
        fixed = re.sub(r"[:;]", ".", fixed)
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", fixed):
        if dot_groups_thousands and re.fullmatch(r"[0-9]{1,3}(\.[0-9]{3})+", fixed):
            return float(fixed.replace(".", "")), corrected
        return float(fixed), corrected
    if re.fullmatch(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?", fixed):
        return float(fixed.replace(",", "")), corrected
    if re.fullmatch(r"[0-9]+,[0-9]{1,2}", fixed):  # a decimal comma
        return float(fixed.replace(",", ".")), corrected
    if re.fullmatch(r"[0-9]{1,3}(\.[0-9]{3})+,[0-9]+", fixed):  # 1.234,5
        return float(fixed.replace(".", "").replace(",", ".")), corrected
    if re.fullmatch(r"[0-9][0-9,]*", fixed):  # commas in odd places: OCR noise between digits
        return float(fixed.replace(",", "")), True
    return None


def _as_number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def parse_number(text: str) -> Parsed | None:
    for match in NUMBER_TOKEN.finditer(_GLUED_UNIT.sub(" ", text)):
        found = number_from(match.group(0))
        if found is not None:
            value, corrected = found
            return _as_number(value), match.group(0), CORRECTED if corrected else 1.0
    return None


def parse_money(text: str) -> Parsed | None:
    parsed = parse_number(re.sub(r"\$|USD|US\$", " ", text))
    if parsed is None:
        return None
    value, raw, quality = parsed
    return round(float(value), 2), raw, quality


def unit_after(text: str) -> str | None:
    """The weight unit written at the start of ``text`` (lb, kg, t or ton), if any."""
    match = _UNIT.match(text.strip().lower())
    if match is None:
        return None
    return UNIT_WORDS[int(match.lastgroup[1:])][1]  # type: ignore[index]


def parse_weight(text: str, unit: str = "lb") -> Parsed | None:
    """A weight converted to ``unit`` from the unit written after it (else ``unit`` itself).

    Pounds and kilograms come back as whole numbers, tonnes and tons with two decimals."""
    spaced = _GLUED_UNIT.sub(" ", text)
    for match in NUMBER_TOKEN.finditer(spaced):
        written = unit_after(spaced[match.end():])
        found = number_from(match.group(0), dot_groups_thousands=(written or unit) in ("lb", "kg"))
        if found is None:
            continue
        value, corrected = found
        converted = convert_weight(value, written or unit, unit)
        result = round(converted, 2) if unit in ("ton", "t") else int(round(converted))
        raw = match.group(0) + (f" {spaced[match.end():].strip().split()[0]}" if written else "")
        return result, raw, CORRECTED if corrected else 1.0
    return None


def _month(word: str) -> int | None:
    return MONTHS.get(word.lower().translate(LETTER_CONFUSIONS).rstrip("."))


def _digits(*parts: str) -> tuple[list[int], bool]:
    fixed = [fix_digits(part) for part in parts]
    return [int(text) for text, _ in fixed], any(corrected for _, corrected in fixed)


def parse_date(text: str) -> Parsed | None:
    """An ISO date (YYYY-MM-DD) from 2026-03-14, 03/14/2026 (or 14/03/2026 when the first part
    cannot be a month), 03/14/26, 14 Mar 2026, March 14, 2026 and the like; the leftmost wins."""
    candidates: list[tuple[int, int, int, int, str, bool]] = []  # start, year, month, day, raw, corrected
    for match in _ISO_DATE.finditer(text):
        (year, month, day), corrected = _digits(*match.groups())
        candidates.append((match.start(), year, month, day, match.group(0), corrected))
    for match in _NUMERIC_DATE.finditer(text):
        (month, day, year), corrected = _digits(*match.groups())
        if month > 12 >= day:
            month, day = day, month
        candidates.append((match.start(), year + 2000 if year < 100 else year, month, day, match.group(0), corrected))
    for match in _DAY_MONTH_YEAR.finditer(text):
        month = _month(match.group(2))
        if month:
            (day, year), corrected = _digits(match.group(1), match.group(3))
            candidates.append((match.start(), year, month, day, match.group(0), corrected))
    for match in _MONTH_DAY_YEAR.finditer(text):
        month = _month(match.group(1))
        if month:
            (day, year), corrected = _digits(match.group(2), match.group(3))
            candidates.append((match.start(), year, month, day, match.group(0), corrected))
    for _, year, month, day, raw, corrected in sorted(candidates, key=lambda c: c[0]):
        try:
            value = date(year, month, day)
        except ValueError:
            continue
        return value.isoformat(), raw.strip(), CORRECTED if corrected else 1.0
    return None


def parse_time(text: str) -> Parsed | None:
    """HH:MM (24 hours) from 14:05, 2:05 PM, 07.45, 14h05, 14:05:30."""
    for match in _TIME.finditer(text):
        (hour, minute), corrected = _digits(match.group(1), match.group(2))
        meridiem = (match.group(3) or "").lower().replace(".", "").replace(" ", "")
        if meridiem == "pm" and hour < 12:
            hour += 12
        if meridiem == "am" and hour == 12:
            hour = 0
        if hour < 24 and minute < 60:
            return f"{hour:02d}:{minute:02d}", match.group(0).strip(), CORRECTED if corrected else 1.0
    return None


def parse_id(text: str, pattern: str | None = None) -> Parsed | None:
    """An identifier: the template's pattern, else the first token ("104857", "TR-4187").

    A mostly numeric id has letters read for digits corrected, keeping a letter prefix ("T-")."""
    if pattern:
        match = re.search(pattern, text)
        if match is not None:
            return match.group(0), match.group(0), 1.0
        fixed, _ = fix_digits(text)
        match = re.search(pattern, fixed)
        return (match.group(0), match.group(0), CORRECTED) if match else None
    match = _ID_TOKEN.search(text)
    if match is None:
        return None
    raw = match.group(0)
    token = re.sub(r"-\s", "-", raw)
    head = re.match(r"[A-Za-z]{1,4}-", token)  # a letter prefix such as "TR-" stays letters
    body = token[head.end():] if head else token
    if sum(c.isdigit() for c in body) * 2 < len(body):
        return token.upper(), raw, 1.0
    fixed, corrected = fix_digit_runs(body)
    return ((head.group(0) if head else "") + fixed).upper(), raw, CORRECTED if corrected else 1.0


def parse_text(text: str, pattern: str | None = None) -> Parsed | None:
    """Free text, spaces collapsed and punctuation trimmed at the ends."""
    if pattern:
        match = re.search(pattern, text)
        return (match.group(0).strip(), match.group(0), 1.0) if match else None
    cleaned = re.sub(r"\s+", " ", text).strip()
    while True:  # punctuation at the ends, but for a full stop after a word ("Co.")
        trimmed = re.sub(r"^[^\w(\"']+|(?<![\w.])\.+$|[^\w).\"']+$", "", cleaned).strip()
        for opening, closing in ("()", '""', "''"):  # a bracket or quote without its pair is noise
            if trimmed.count(opening) + trimmed.count(closing) == 1:
                trimmed = trimmed.strip(opening + closing).strip()
        if trimmed == cleaned:
            break
        cleaned = trimmed
    return (cleaned, text.strip(), 1.0) if re.search(r"[A-Za-z0-9]", cleaned) else None


PARSERS: dict[str, Callable[[str], Parsed | None]] = {
    "number": parse_number, "money": parse_money, "date": parse_date, "time": parse_time,
}


def parse_value(kind: str, text: str, pattern: str | None = None, unit: str = "lb") -> Parsed | None:
    """The value of a field of type ``kind`` in ``text``, or None when there is none."""
    if kind == "id":
        return parse_id(text, pattern)
    if kind == "text":
        return parse_text(text, pattern)
    if pattern:
        match = re.search(pattern, text) or re.search(pattern, fix_digits(text)[0])
        if match is None:
            return None
        text = match.group(0)
    if kind == "weight":
        return parse_weight(text, unit)
    return PARSERS[kind](text)
