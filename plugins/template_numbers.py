"""Numbers as tickets print them and OCR reads them: plain numbers, money and weights with units.

Each parser returns ``(value, raw, quality)`` or ``None`` (see :mod:`plugins.template_values`).

- Thousands grouped by a space or by ", " ("72 340", "72, 340") are one number when every group
  after the first has three digits, read with a little less quality; two digit runs split by one
  space that are no such grouping ("5588 12") are joined, but the read is ambiguous and its quality
  is low enough to send the field to review.
- Money keeps its sign ("-$12.50", "($12.50)") and two decimals, as a string ("1234.50"), so that
  JSON and CSV show the cents; an "S" just before the amount is a misread "$".
- Units: lb (also "Ib", "1bs", "LB.", "#"), kg ("kgs", "KG"), t: the metric tonne of 1000 kg ("t",
  "tonnes", "MT"), ton: the short ton of 2000 lb ("ton", "tons", "TN", "short tons", and "ST" after
  a number and a space: "36 ST").
- A number or a weight keeps a minus sign written against its digits ("-1,200.5", "-1,200 lb"); a
  dash set apart by a space ("Gross - 61,260") is punctuation. A plain number in brackets is
  negative, as accounts print it ("(12)").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

Parsed = tuple[object, str, float]

CORRECTED = 0.85  # quality of a value read only after correcting OCR confusions
REGROUPED = 0.9  # thousands grouped by a space: very likely one number, but not as printed
AMBIGUOUS = 0.55  # a guess between readings: low enough for review at the default threshold (0.6)

# letters OCR reads in place of digits, in a numeric context
DIGIT_CONFUSIONS = str.maketrans({"O": "0", "o": "0", "D": "0", "Q": "0", "l": "1", "I": "1", "i": "1", "|": "1",
                                  "!": "1", "S": "5", "s": "5", "B": "8", "Z": "2", "z": "2"})

POUNDS_PER = {"lb": 1.0, "kg": 2.20462262185, "t": 2204.62262185, "ton": 2000.0}
UNIT_WORDS: tuple[tuple[str, str], ...] = (
    (r"short\s*tons?|s\.?\s*tons?|tons?|tn", "ton"),  # the US short ton, 2000 lb
    (r"tonnes?|metric\s*tons?|mt|t", "t"),  # the metric tonne, 1000 kg
    (r"kgs?|kilograms?|kilos?|kq", "kg"),
    (r"[l1i|]bs?|pounds?|#", "lb"),  # "Ib" and "1bs": how OCR reads "lb" and "lbs"
)
_UNIT = re.compile("|".join(rf"(?P<u{n}>(?:{pattern})(?![a-z])\.?)" for n, (pattern, _) in enumerate(UNIT_WORDS)))
# "36 ST": short tons, where the letters follow a number ("1ST", one token, is an ordinal, no number)
_SHORT_TONS = re.compile(r"st\.?(?![a-z0-9])")
# a unit glued to its number ("72,340lb", "18.7t"): a space goes in before it is read
_GLUED_UNIT = re.compile(r"(?<=[0-9])(?=(?:[li]bs?|kgs?|tons?|tonnes?|tn|t)(?![a-z]))", re.IGNORECASE)

_D = "0-9OoDQlIi|!SsBZz"  # a digit, or a letter OCR reads in its place
# a number as OCR may misread it: digits (or letters confused with them) and separators, with at
# least one real digit, not glued to a word ("Soil" is no number, "5O,12O" and "23:93" are)
NUMBER_TOKEN = re.compile(rf"(?<![A-Za-z0-9])(?=[{_D},.:;]*[0-9])[{_D}](?:[{_D},.:;]*[{_D}])?(?![A-Za-z0-9])")
_EDGE = r"(?![A-Za-z0-9]|[,.][0-9])"
# "72 340", "72, 340", "1 234 567.5": thousands grouped by a space
_SPACE_GROUPED = re.compile(rf"(?<![A-Za-z0-9,.])[0-9]{{1,3}}(?:(?:, | )[0-9]{{3}})+(?:\.[0-9]+)?{_EDGE}")
# "5588 12": two digit runs one space apart that are no grouping of thousands
_SPLIT_DIGITS = re.compile(rf"(?<![A-Za-z0-9,.])[0-9]+ [0-9]+{_EDGE}")
_CURRENCY = re.compile(r"US\$|USD|\$", re.IGNORECASE)
# a minus sign against a weight's digits, not inside a word or a number ("J-7741", "25-0826")
_WEIGHT_SIGN = re.compile(r"(?<![A-Za-z0-9.,])[-\u2212\u2013]$")
# an opening bracket right before a number: with its closing one after it, a negative ("(12)")
_BRACKETED = re.compile(r"(?<![A-Za-z0-9])\(\s*$")
# what may stand before an amount and belongs to it: a bracket, a sign, a currency
_MONEY_LEAD = re.compile(r"(?:\(\s*)?(?:[-\u2212]\s*)?(?:US\$|USD|usd|\$|S)?\s*(?:[-\u2212]\s*)?$")


def pattern_match(pattern: str, text: str) -> re.Match[str] | None:
    """The first match of a template's ``pattern`` in ``text`` that holds more than spaces: an
    empty match ("[0-9]*" before "ABC-77") is no value, so the search goes on past it."""
    return next((match for match in re.finditer(pattern, text) if match.group(0).strip()), None)


def fix_digits(text: str) -> tuple[str, bool]:
    """Letters read for digits turned back into digits; and whether any was."""
    fixed = text.translate(DIGIT_CONFUSIONS)
    return fixed, fixed != text


def convert_weight(value: float, unit: str, to_unit: str) -> float:
    """``value`` in ``unit`` as ``to_unit`` (lb, kg, t: tonne, ton: short ton), not rounded."""
    return value * POUNDS_PER[unit] / POUNDS_PER[to_unit]


def _plain(token: str, dot_groups_thousands: bool = False) -> tuple[str, bool] | None:
    """The token as a plain decimal ("72340", "23.93"), and whether OCR confusions were corrected."""
    fixed, corrected = fix_digits(token.strip().replace("'", ""))
    if re.search(r"[:;]", fixed):
        corrected = True
        fixed = re.sub(r"[:;](?=[0-9]{3}(?![0-9]))", ",", fixed)
        fixed = re.sub(r"[:;]", ".", fixed)
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", fixed):
        if dot_groups_thousands and re.fullmatch(r"[0-9]{1,3}(\.[0-9]{3})+", fixed):
            return fixed.replace(".", ""), corrected
        return fixed, corrected
    if re.fullmatch(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?", fixed):
        return fixed.replace(",", ""), corrected
    if re.fullmatch(r"[0-9]+,[0-9]{1,2}", fixed):  # a decimal comma
        return fixed.replace(",", "."), corrected
    if re.fullmatch(r"[0-9]{1,3}(\.[0-9]{3})+,[0-9]+", fixed):  # 1.234,5
        return fixed.replace(".", "").replace(",", "."), corrected
    if re.fullmatch(r"[0-9][0-9,]*", fixed):  # commas in odd places: OCR noise between digits
        return fixed.replace(",", ""), True
    return None


def number_from(token: str, dot_groups_thousands: bool = False) -> tuple[float, bool] | None:
    """The number a token stands for, and whether OCR confusions were corrected.

    "72,340" and "72,340.5" are US numbers; "20,5" has a decimal comma; a colon or semicolon
    between digits is a misread separator ("23:93" is 23.93, "47:860" is 47860).
    ``dot_groups_thousands`` reads "72.340" as 72340 (weights in lb or kg are never that fine).
    """
    plain = _plain(token, dot_groups_thousands)
    return None if plain is None else (float(plain[0]), plain[1])


@dataclass(frozen=True)
class NumberSpan:
    """A number found in a text: its span, its token with any spaces taken out, and the quality
    the way it was written allows."""

    start: int
    end: int
    token: str
    quality: float = 1.0


def number_spans(text: str) -> list[NumberSpan]:
    """The numbers in ``text``, left to right, thousands grouped by spaces read as one."""
    spans = [NumberSpan(m.start(), m.end(), m.group(0).replace(" ", ""), REGROUPED)
             for m in _SPACE_GROUPED.finditer(text) if " " in m.group(0)]
    for pattern, quality in ((_SPLIT_DIGITS, AMBIGUOUS), (NUMBER_TOKEN, 1.0)):
        for m in pattern.finditer(text):
            if not any(m.start() < s.end and s.start < m.end() for s in spans):
                spans.append(NumberSpan(m.start(), m.end(), m.group(0).replace(" ", ""), quality))
    return sorted(spans, key=lambda span: span.start)


def _as_number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def parse_number(text: str) -> Parsed | None:
    """A plain number with its sign: "-1,200.5" is -1200.5, and "(12)" (as accounts print a
    negative) -12; a dash set apart by a space ("Count - 12") is punctuation."""
    spaced = _GLUED_UNIT.sub(" ", text)
    for span in number_spans(spaced):
        found = number_from(span.token)
        if found is not None:
            value, corrected = found
            start, end = span.start, span.end
            opening = _BRACKETED.search(spaced[:start])
            closing = re.match(r"\s*\)", spaced[end:]) if opening else None
            sign = _WEIGHT_SIGN.search(spaced[:start])
            if opening and closing:
                start, end = opening.start(), end + closing.end()
            elif sign:
                start = sign.start()
            negative = bool((opening and closing) or sign) and value != 0
            return (_as_number(-value if negative else value), spaced[start:end],
                    min(span.quality, CORRECTED if corrected else 1.0))
    return None


def parse_money(text: str) -> Parsed | None:
    """An amount as a string with two decimals and its sign: "-12.50" from "-$12.50" or "($12.50)"."""
    masked = _CURRENCY.sub(lambda m: " " * len(m.group(0)), text)
    unmasked = re.sub(r"(?<![A-Za-z0-9])S(?=[0-9])", " ", masked)  # "S45.00": a "$" read as "S"
    for span in number_spans(unmasked):
        plain = _plain(span.token)
        if plain is None:
            continue
        digits, corrected = plain
        before, after = unmasked[:span.start].rstrip(), unmasked[span.end:].lstrip()
        negative = before.endswith(("-", "\u2212")) or (before.endswith("(") and after.startswith(")"))
        amount = Decimal(digits).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        value = f"{-amount if negative and amount else amount:.2f}"
        corrected = corrected or unmasked[:span.end] != masked[:span.end]
        start = _MONEY_LEAD.search(text[:span.start]).start()  # type: ignore[union-attr]
        end = span.end + (len(unmasked[span.end:]) - len(after) + 1 if negative and after.startswith(")") else 0)
        return value, text[start:end].strip(), min(span.quality, CORRECTED if corrected else 1.0)
    return None


def unit_match(text: str, after_number: bool = False) -> tuple[str, str] | None:
    """The weight unit written at the start of ``text`` (lb, kg, t or ton) and its words as written.
    ``after_number``: ``text`` follows a number, where "ST" is short tons too (elsewhere it is
    more often a street, or the end of "1st")."""
    stripped = text.lstrip()
    match = _UNIT.match(stripped.lower())
    if match is not None:
        return UNIT_WORDS[int(match.lastgroup[1:])][1], stripped[:match.end()]  # type: ignore[index]
    short_tons = _SHORT_TONS.match(stripped.lower()) if after_number else None
    return ("ton", stripped[:short_tons.end()]) if short_tons else None


def unit_after(text: str) -> str | None:
    """The weight unit written at the start of ``text`` (lb, kg, t or ton), if any."""
    found = unit_match(text)
    return found[0] if found else None


def unit_word(text: str, after_number: bool = False) -> str | None:
    """The unit a word stands for when the whole word is one ("kg", "t.", "Ibs"; "ST" after a
    number), else None."""
    found = unit_match(text, after_number)
    return found[0] if found and found[1] == text.strip() else None


def unit_in(text: str) -> str | None:
    """A weight unit written anywhere in ``text`` as a word of its own ("Gross (kg)"), if any."""
    for match in re.finditer(r"(?<![A-Za-z0-9])(?=[A-Za-z#])", text):
        found = unit_after(text[match.start():])
        if found is not None:
            return found
    return None


def leading_weight(text: str) -> tuple[float, str, str, float] | None:
    """The weight ``text`` starts with, a number with its unit written after it ("20.67 tons",
    "18.75t"): the number as written (unsigned), its unit, its raw text and the quality of the read;
    None when ``text`` starts with anything else, or its number has no unit."""
    spaced = _GLUED_UNIT.sub(" ", text)
    spans = number_spans(spaced)
    if not spans or spans[0].start != 0:
        return None
    span = spans[0]
    written = unit_match(spaced[span.end:], after_number=True)
    plain = _plain(span.token, dot_groups_thousands=written[0] in ("lb", "kg")) if written else None
    if written is None or plain is None:
        return None
    raw = spaced[:span.end] + spaced[span.end:len(spaced) - len(spaced[span.end:].lstrip())] + written[1]
    return float(plain[0]), written[0], raw, min(span.quality, CORRECTED if plain[1] else 1.0)


def parse_weight(text: str, unit: str = "lb", pattern: str | None = None,
                 assumed_unit: str | None = None) -> Parsed | None:
    """A weight converted to ``unit`` from the unit written after it, else ``assumed_unit`` (one
    named in the label), else ``unit`` itself. Pounds and kilograms come back as whole numbers,
    tonnes and tons with two decimals.

    A ``pattern`` picks the number's text; the unit written after what it picked still counts."""
    spaced = _GLUED_UNIT.sub(" ", text)
    if pattern:
        match = pattern_match(pattern, spaced) or pattern_match(pattern, fix_digits(spaced)[0])
        if match is None:
            return None
        picked = spaced[match.start():match.end()]
        spans = [NumberSpan(s.start + match.start(), s.end + match.start(), s.token, s.quality)
                 for s in number_spans(picked)]
    else:
        spans = number_spans(spaced)
    for span in spans:
        written = unit_match(spaced[span.end:], after_number=True)
        from_unit = written[0] if written else assumed_unit or unit
        plain = _plain(span.token, dot_groups_thousands=from_unit in ("lb", "kg"))
        if plain is None:
            continue
        sign = _WEIGHT_SIGN.search(spaced[:span.start])
        converted = convert_weight(float(plain[0]), from_unit, unit) * (-1 if sign else 1)
        result = round(converted, 2) if unit in ("ton", "t") else int(round(converted))
        raw = spaced[sign.start() if sign else span.start:span.end] + (f" {written[1]}" if written else "")
        return result, raw, min(span.quality, CORRECTED if plain[1] else 1.0)
    return None
