"""Built-in extraction: fields from a page's text by a TOML template.

A template (``--template NAME`` for a bundled one in ``plugins/templates/``, or a path) lists
fields::

    [[field]]
    name = "gross_lb"
    labels = ["gross weight", "gross"]   # synonyms; case, spaces and OCR slips tolerated
    type = "weight"                      # id, text, date, time, number, money, weight
    unit = "lb"                          # for weight: lb, kg, t (tonne) or ton (short ton)
    pattern = '...'                      # optional regex for the value
    required = true

On each line the labels of all fields are found (the longest match wins where labels overlap,
so "Net Tons" is not "Net"); a field's value is the text after its label up to the next label on
the same line, or else the next line. The field's confidence is the mean OCR confidence of the
value's words times how cleanly label and value matched.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine import hookimpl
from engine.errors import ConfigError
from engine.records import Field, OcrResult, PageTask
from plugins.template_values import parse_value

TEMPLATE_DIR = Path(__file__).parent / "templates"
TYPES = ("id", "text", "date", "time", "number", "money", "weight")
UNITS = ("lb", "kg", "t", "ton")
# letters OCR confuses inside words, folded before labels are compared
LABEL_SLIP_QUALITY = 0.9  # a label read with OCR slips ("GR0SS") lowers the field's confidence
LABEL_FOLD = str.maketrans({"0": "o", "1": "l", "|": "l", "i": "l", "5": "s", "8": "b", "$": "s"})


@dataclass(frozen=True)
class FieldSpec:
    name: str
    labels: tuple[str, ...]
    type: str = "text"
    unit: str = "lb"
    pattern: str | None = None
    required: bool = False


@dataclass(frozen=True)
class Template:
    name: str
    path: str
    fields: tuple[FieldSpec, ...]

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)


def resolve_template(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise ConfigError(f"template {name_or_path} not found")
        return candidate.resolve()
    bundled = TEMPLATE_DIR / f"{name_or_path}.toml"
    if not bundled.is_file():
        names = ", ".join(sorted(p.stem for p in TEMPLATE_DIR.glob("*.toml")))
        raise ConfigError(f"no bundled template {name_or_path!r} (bundled: {names}); or give a path to a .toml")
    return bundled


@lru_cache(maxsize=8)
def _load(path: str) -> Template:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"template {path}: {exc}") from None
    entries = data.get("field")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"template {path}: no [[field]] entries")
    fields = []
    for number, entry in enumerate(entries, start=1):
        name = entry.get("name")
        labels = entry.get("labels")
        kind = entry.get("type", "text")
        where = f"template {path}, field {number} ({name or 'no name'})"
        if not name or not isinstance(name, str):
            raise ConfigError(f"{where}: needs a name")
        if not labels or not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
            raise ConfigError(f"{where}: needs labels, a list of strings")
        if kind not in TYPES:
            raise ConfigError(f"{where}: type must be one of {', '.join(TYPES)}, not {kind!r}")
        unit = entry.get("unit", "lb")
        if unit not in UNITS:
            raise ConfigError(f"{where}: unit must be one of {', '.join(UNITS)}, not {unit!r}")
        pattern = entry.get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{where}: bad pattern: {exc}") from None
        fields.append(FieldSpec(name, tuple(labels), kind, unit, pattern, bool(entry.get("required", False))))
    return Template(str(data.get("name", Path(path).stem)), path, tuple(fields))


def load_template(name_or_path: str) -> Template:
    """The template for ``--template``; loaded once per process."""
    return _load(str(resolve_template(name_or_path)))


# ------------------------------------------------------------------- matching
def _fold(text: str) -> str:
    return text.lower().translate(LABEL_FOLD)


@lru_cache(maxsize=256)
def _label_regex(label: str) -> re.Pattern[str]:
    """A label as a regex over folded text: words separated by any spaces or punctuation."""
    words = [re.escape(word) for word in re.findall(r"[a-z0-9#]+", _fold(label))]
    body = r"[\s.:_-]*".join(words)
    return re.compile(rf"(?<![a-z0-9]){body}(?![a-z])")


@dataclass(frozen=True)
class LabelHit:
    field: FieldSpec
    start: int
    end: int
    exact: bool = True  # matched as written (case and spacing aside), not only after folding OCR slips


def find_labels(line: str, template: Template) -> list[LabelHit]:
    """Non-overlapping label matches on one line, the longest first where they overlap."""
    folded = _fold(line)
    lowered = line.lower()
    hits = []
    for spec in template.fields:
        for label in spec.labels:
            for match in _label_regex(label).finditer(folded):
                written = re.sub(r"[^a-z0-9#]", "", lowered[match.start():match.end()])
                exact = written == re.sub(r"[^a-z0-9#]", "", label.lower())
                hits.append(LabelHit(spec, match.start(), match.end(), exact))
    hits.sort(key=lambda h: (-(h.end - h.start), h.start))
    chosen: list[LabelHit] = []
    taken: set[str] = set()
    for hit in hits:
        if hit.field.name in taken or any(hit.start < c.end and c.start < hit.end for c in chosen):
            continue
        chosen.append(hit)
        taken.add(hit.field.name)
    return sorted(chosen, key=lambda h: h.start)


def _confidence_of(raw: str, line_index: int, ocr: OcrResult) -> float:
    """Mean OCR confidence (0..1) of the words of ``raw`` on its line; 1.0 for a text layer."""
    if not ocr.words:
        return 1.0
    tokens = set(raw.split())
    scores = [w.confidence for w in ocr.words if w.line == line_index and (w.text in tokens or w.text in raw)]
    if not scores:
        scores = [w.confidence for w in ocr.words if w.line == line_index]
    return (sum(scores) / len(scores) / 100.0) if scores else ocr.mean_confidence / 100.0


def _word_columns(ocr: OcrResult, index: int, line: str) -> list[tuple[int, int, str]]:
    """(char offset in the line, left x, text) of the words of OCR line ``index``."""
    words = [w for w in ocr.words if w.line == index]
    columns, offset = [], 0
    for word in words:
        at = line.find(word.text, offset)
        if at < 0:
            return []
        columns.append((at, word.left, word.text))
        offset = at + len(word.text)
    return columns


def _x_at(columns: list[tuple[int, int, str]], offset: int) -> int | None:
    for at, left, text in columns:
        if at <= offset < at + len(text) + 1:
            return left
    return None


def _values_below(ocr: OcrResult, lines: list[str], index: int, hits: list[LabelHit]) -> dict[str, str]:
    """Each label's value from the next line, split by the labels' columns (needs word positions)."""
    columns = _word_columns(ocr, index, lines[index])
    below = [w for w in ocr.words if w.line == index + 1]
    if not columns or not below:
        return {}
    starts = [_x_at(columns, hit.start) for hit in hits]
    if None in starts:
        return {}
    values = {}
    slack = 40
    for position, hit in enumerate(hits):
        left = starts[position] - slack  # type: ignore[operator]
        right = starts[position + 1] - slack if position + 1 < len(hits) else 10**9  # type: ignore[operator]
        values[hit.field.name] = " ".join(w.text for w in below if left <= w.left < right)
    return values


def extract_fields(ocr: OcrResult, template: Template) -> list[Field]:
    lines = list(ocr.lines) if ocr.lines else ocr.text.splitlines()
    labels_by_line = [find_labels(line, template) for line in lines]
    found: dict[str, Field] = {}
    for index, hits in enumerate(labels_by_line):
        line = lines[index]
        below: dict[str, str] | None = None
        for position, hit in enumerate(hits):
            spec = hit.field
            if spec.name in found:
                continue
            end = hits[position + 1].start if position + 1 < len(hits) else len(line)
            segment = line[hit.end:end]
            parsed = parse_value(spec.type, segment, spec.pattern, spec.unit) if segment.strip(" :#-.") else None
            value_line = index
            if parsed is None and index + 1 < len(lines) and not labels_by_line[index + 1]:
                if below is None:
                    below = _values_below(ocr, lines, index, hits)
                text = below.get(spec.name)
                if text is None and position + 1 == len(hits):
                    text = lines[index + 1]  # no word positions (a text layer): the whole next line
                if text and text.strip():
                    parsed = parse_value(spec.type, text, spec.pattern, spec.unit)
                    value_line = index + 1
            if parsed is None:
                continue
            value, raw, quality = parsed
            if not hit.exact:
                quality *= LABEL_SLIP_QUALITY
            ocr_confidence = _confidence_of(raw, value_line, ocr)
            found[spec.name] = Field(spec.name, value, round(ocr_confidence * quality, 4), raw, spec.type)
    return list(found.values())


@hookimpl
def pagemill_extract(page: PageTask, ocr: OcrResult, config: Any) -> list[Field]:
    return extract_fields(ocr, load_template(config.template))
