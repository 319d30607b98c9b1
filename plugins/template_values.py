"""Value parsers for template fields: id, text, date, time, number, money, weight.

Each parser takes the raw text after a label and returns ``(value, raw, quality)`` or ``None``;
``quality`` in 0..1 says how cleanly it parsed (1.0 clean, lower when OCR confusions such as O/0,
l/1, S/5 had to be corrected).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Callable

Parsed = tuple[Any, str, float]

# letters OCR often reads in place of digits, in a numeric context
DIGIT_CONFUSIONS = str.maketrans({"O": "0", "o": "0", "D": "0", "Q": "0", "l": "1", "I": "1", "i": "1", "|": "1",
                                  "!": "1", "S": "5", "s": "5", "B": "8", "Z": "2", "z": "2", "G": "6", "g": "9"})
MONTHS = {name: index for index, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
     ("dec", "december")], start=1) for name in names}

POUNDS_PER = {"lb": 1.0, "kg": 2.20462262185, "t": 2204.62262185, "ton": 2000.0}
UNIT_WORDS = [
    (r"short\s*tons?|s\.?\s*tons?|tons?|tn", "ton"),
    (r"tonnes?|metric\s*tons?|mt|t", "t"),
    (r"kgs?|kilograms?|kilos?", "kg"),
    (r"lbs?\.?|pounds?|#", "lb"),
]
# a number as OCR may misread it: digits (or letters confused with them) and separators, with at
# least one real digit, not glued to a word ("Soil" is no number, "5O,12O" is)
NUMBER_TOKEN = r"(?<![A-Za-z])(?=[0-9OoDQlIi|SsBZz,.]*[0-9])[0-9OoDQlIi|SsBZz][0-9OoDQlIi|SsBZz,.]*(?<![,.])(?![A-Za-z])"


def fix_digits(text: str) -> tuple[str, bool]:
    fixed = text.translate(DIGIT_CONFUSIONS)
    return fixed, fixed != text


def _number_from(token: str) -> tuple[float, bool] | None:
    token = token.strip().replace("'", "")
    fixed, corrected = fix_digits(token)
    if not re.fullmatch(r"[0-9][0-9,]*(\.[0-9]+)?|\.[0-9]+", fixed):
        return None
    if re.fullmatch(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?", fixed) or "," not in fixed:
        return float(fixed.replace(",", "")), corrected
    if re.fullmatch(r"[0-9]+,[0-9]{1,2}", fixed):  # a decimal comma
        return float(fixed.replace(",", ".")), corrected
    return float(fixed.replace(",", "")), True


def parse_number(text: str) -> Parsed | None:
    for match in re.finditer(NUMBER_TOKEN, text):
        found = _number_from(match.group(0))
        if found is not None:
            value, corrected = found
            return (int(value) if value.is_integer() else value), match.group(0).strip(), 0.85 if corrected else 1.0
    return None


def parse_money(text: str) -> Parsed | None:
    parsed = parse_number(text.replace("$", " ").replace("USD", " "))
    if parsed is None:
        return None
    value, raw, quality = parsed
    return round(float(value), 2), raw, quality


def parse_weight(text: str, unit: str = "lb") -> Parsed | None:
    for match in re.finditer(NUMBER_TOKEN, text):
        found = _number_from(match.group(0))
        if found is None:
            continue
        value, corrected = found
        rest = text[match.end():].strip().lower()
        written = None
        for pattern, name in UNIT_WORDS:
            if re.match(rf"(?:{pattern})\b", rest) or (name == "lb" and rest.startswith("#")):
                written = name
                break
        source = written or unit
        pounds = value * POUNDS_PER[source]
        converted = pounds / POUNDS_PER[unit]
        result: Any = round(converted, 2) if unit in ("ton", "t") else int(round(converted))
        raw = match.group(0).strip() + (f" {written}" if written else "")
        return result, raw, (0.85 if corrected else 1.0) * (1.0 if written or source == unit else 0.9)
    return None


def parse_date(text: str) -> Parsed | None:
    candidates: list[tuple[int, int, int, str, bool]] = []
    for match in re.finditer(r"([0-9OoIl|SB]{4})[-/.]([0-9OoIl|SB]{1,2})[-/.]([0-9OoIl|SB]{1,2})", text):
        parts = [fix_digits(p) for p in match.groups()]
        candidates.append((int(parts[0][0]), int(parts[1][0]), int(parts[2][0]), match.group(0), any(c for _, c in parts)))
    for match in re.finditer(r"([0-9OoIl|SB]{1,2})[-/.]([0-9OoIl|SB]{1,2})[-/.]([0-9OoIl|SB]{2,4})", text):
        parts = [fix_digits(p) for p in match.groups()]
        month, day, year = (int(p[0]) for p in parts)
        if month > 12 >= day:
            month, day = day, month
        year = year + 2000 if year < 100 else year
        candidates.append((year, month, day, match.group(0), any(c for _, c in parts)))
    for match in re.finditer(r"([0-9OoIl|SB]{1,2})\s*([A-Za-z]{3,9})\.?,?\s*([0-9OoIl|SB]{4})", text):
        month = MONTHS.get(match.group(2).lower())
        if month:
            day, c1 = fix_digits(match.group(1))
            year, c2 = fix_digits(match.group(3))
            candidates.append((int(year), month, int(day), match.group(0), c1 or c2))
    for match in re.finditer(r"([A-Za-z]{3,9})\.?\s*([0-9OoIl|SB]{1,2})(?:st|nd|rd|th)?,?\s*([0-9OoIl|SB]{4})", text):
        month = MONTHS.get(match.group(1).lower())
        if month:
            day, c1 = fix_digits(match.group(2))
            year, c2 = fix_digits(match.group(3))
            candidates.append((int(year), month, int(day), match.group(0), c1 or c2))
    for year, month, day, raw, corrected in candidates:
        try:
            value = date(year, month, day)
        except ValueError:
            continue
        return value.isoformat(), raw.strip(), 0.85 if corrected else 1.0
    return None


def parse_time(text: str) -> Parsed | None:
    pattern = r"([0-9OoIl|]{1,2})\s*[:.h]\s*([0-9OoIl|]{2})(?:\s*[:.]\s*[0-9OoIl|]{2})?\s*([AaPp]\.?\s?[Mm]\.?)?"
    for match in re.finditer(pattern, text):
        hour_text, c1 = fix_digits(match.group(1))
        minute_text, c2 = fix_digits(match.group(2))
        hour, minute = int(hour_text), int(minute_text)
        meridiem = (match.group(3) or "").lower().replace(".", "").replace(" ", "")
        if meridiem == "pm" and hour < 12:
            hour += 12
        if meridiem == "am" and hour == 12:
            hour = 0
        if hour < 24 and minute < 60:
            return f"{hour:02d}:{minute:02d}", match.group(0).strip(), 0.85 if (c1 or c2) else 1.0
    return None


def parse_id(text: str, pattern: str | None = None) -> Parsed | None:
    text = text.strip()
    if pattern:
        match = re.search(pattern, text)
        if match is None:
            fixed, _ = fix_digits(text)
            match = re.search(pattern, fixed)
            if match is None:
                return None
            return match.group(0), match.group(0), 0.85
        return match.group(0), match.group(0), 1.0
    match = re.search(r"[A-Za-z0-9][A-Za-z0-9\-/]*", text)
    if match is None:
        return None
    token = match.group(0)
    digits = sum(c.isdigit() for c in token)
    if digits >= len(token) / 2:  # a mostly numeric id: fix letter-for-digit confusions
        fixed, corrected = fix_digits(token)
        head = re.match(r"[A-Za-z]{1,3}-", token)  # keep a letter prefix such as "T-"
        if head:
            fixed, corrected = head.group(0) + fix_digits(token[head.end():])[0], fix_digits(token[head.end():])[1]
        return fixed.upper(), token, 0.85 if corrected else 1.0
    return token.upper(), token, 1.0


def parse_text(text: str, pattern: str | None = None) -> Parsed | None:
    if pattern:
        match = re.search(pattern, text)
        return (match.group(0).strip(), match.group(0), 1.0) if match else None
    cleaned = re.sub(r"\s+", " ", text).strip(" :;-_.|")
    return (cleaned, text.strip(), 1.0) if cleaned else None


PARSERS: dict[str, Callable[..., Parsed | None]] = {
    "number": parse_number, "money": parse_money, "date": parse_date, "time": parse_time,
}


def parse_value(kind: str, text: str, pattern: str | None = None, unit: str = "lb") -> Parsed | None:
    if kind == "weight":
        return parse_weight(text, unit)
    if kind == "id":
        return parse_id(text, pattern)
    if kind == "text":
        return parse_text(text, pattern)
    if pattern:
        match = re.search(pattern, text)
        if match is None:
            return None
        text = match.group(0)
    return PARSERS[kind](text)
