"""Templates for :mod:`plugins.template_extract`: the TOML file format, found, checked and cached.

A template is a bundled name (``plugins/templates/NAME.toml``) or a path to a ``.toml`` file::

    name = "truck_ticket"                # optional; the file's stem otherwise
    description = "..."                  # optional
    date_order = "MDY"                   # optional: how 03/04/2025 reads: MDY (default), DMY or YMD

    [[field]]
    name = "gross_lb"                    # letters, digits and underscores
    labels = ["gross weight", "gross"]   # synonyms: case, spacing and OCR slips tolerated
    weak_labels = ["scale ticket"]       # optional: words that may label the field but also head a
                                         # page; taken only when nothing better is found, and only
                                         # for a value that fills its place (not "1234 Quarry Road")
    type = "weight"                      # id, text, date, time, number, money or weight
    unit = "lb"                          # weight only: lb, kg, t (tonne) or ton (short ton)
    pattern = '...'                      # optional: a regex the value must match; one that can
                                         # match nothing at all ("[0-9]*") is refused
    required = true                      # validation sends a page without it to review
    date_order = "DMY"                   # date only: this field's own order
    role = "gross"                       # optional: what the field is on a ticket, for validation

A field's ``role`` tells validation (:mod:`plugins.ticket_validate`) what it holds, whatever its
name, each role on one field at most:

- ``gross``, ``tare``, ``net``: weights (type ``weight``, any unit): net = gross - tare is checked in
  one unit, gross is not below tare, no weight is negative, not every weight is zero;
- ``net_tons``: the net weight again, in tons or tonnes (unit ``ton`` or ``t``), checked against
  the net; extraction also reads it where a ticket prints it right after the net's value, with
  its unit ("Net: 41,340 lb (20.67 tons)": :mod:`plugins.template_restated`);
- ``ticket_id``: the ticket's number (type ``id``, ``text`` or ``number``): one seen on two pages of
  a run is flagged on both.

Fields of type ``date`` are checked for a plausible date whatever their role. A field without a
``role`` named as in the bundled template (``ticket_number``, ``gross_lb``, ``tare_lb``,
``net_lb``, ``net_tons``) has that field's role, when its type fits and no other field claims it.

Any other key, a field defined twice, a label given to two fields, a bad type, unit, role or regex
is a :class:`engine.errors.ConfigError` naming the file, the field and the problem.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.config_paths import is_template_path
from engine.errors import ConfigError
from plugins.template_dates import DATE_ORDERS

TEMPLATE_DIR = Path(__file__).parent / "templates"
TYPES = ("id", "text", "date", "time", "number", "money", "weight")
UNITS = ("lb", "kg", "t", "ton")
TEMPLATE_KEYS = ("name", "description", "date_order", "field")
FIELD_KEYS = ("name", "labels", "weak_labels", "type", "unit", "pattern", "required", "date_order", "description",
              "role")
# each role: the types a field of it may have (and for net_tons the units)
ROLE_TYPES = {"ticket_id": ("id", "text", "number"), "gross": ("weight",), "tare": ("weight",), "net": ("weight",),
              "net_tons": ("weight",)}
ROLES = tuple(ROLE_TYPES)
TON_UNITS = ("ton", "t")
# the bundled template's names: a field so named without a role of its own has this one
IMPLIED_ROLES = {"ticket_number": "ticket_id", "gross_lb": "gross", "tare_lb": "tare", "net_lb": "net",
                 "net_tons": "net_tons"}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    labels: tuple[str, ...]
    type: str = "text"
    unit: str = "lb"
    pattern: str | None = None
    required: bool = False
    weak_labels: tuple[str, ...] = ()
    date_order: str = "MDY"
    role: str | None = None  # see the module's docstring; implied by the bundled names (Template)


def role_problem(role: str, kind: str, unit: str) -> str | None:
    """Why a field of type ``kind`` (weights: in ``unit``) cannot have ``role``; None when it can."""
    if role not in ROLE_TYPES:
        return f"role must be one of {', '.join(ROLES)}, not {role!r}"
    if kind not in ROLE_TYPES[role]:
        return f"role {role!r} is for {' or '.join(ROLE_TYPES[role])} fields, not {kind}"
    if role == "net_tons" and unit not in TON_UNITS:
        return f"role 'net_tons' is for a weight in tons (unit ton or t), not {unit}"
    return None


def _implied_roles(fields: tuple[FieldSpec, ...]) -> tuple[FieldSpec, ...]:
    """The fields with the roles their bundled names imply, where they have none, their type fits
    and no other field has the role."""
    taken = {spec.role for spec in fields if spec.role}
    implied = []
    for spec in fields:
        role = IMPLIED_ROLES.get(spec.name)
        if spec.role is None and role and role not in taken and role_problem(role, spec.type, spec.unit) is None:
            spec = replace(spec, role=role)
            taken.add(role)
        implied.append(spec)
    return tuple(implied)


@dataclass(frozen=True)
class Template:
    """A template's fields, in its order; a field named as in the bundled template has that
    field's role unless it has one (or another field has it)."""

    name: str
    path: str
    fields: tuple[FieldSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", _implied_roles(tuple(self.fields)))

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.fields if spec.required)

    def role(self, role: str) -> FieldSpec | None:
        """The field that has ``role`` (gross, tare, net, net_tons, ticket_id), if any."""
        return next((spec for spec in self.fields if spec.role == role), None)

    @property
    def dates(self) -> tuple[FieldSpec, ...]:
        return tuple(spec for spec in self.fields if spec.type == "date")


def template_path(name_or_path: str) -> Path:
    """The file of ``--template``: a bundled template's name, or a path to a .toml file."""
    text = str(name_or_path).strip()
    if not text:
        raise ConfigError("template: no name or path given")
    if not is_template_path(text):
        bundled = TEMPLATE_DIR / f"{text}.toml"
        if bundled.is_file():
            return bundled
        names = ", ".join(sorted(path.stem for path in TEMPLATE_DIR.glob("*.toml")))
        raise ConfigError(f"no bundled template {text!r} (bundled: {names}); or give a path to a .toml file")
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"template {path}: file not found")
    return path.resolve()


def load_template(name_or_path: str) -> Template:
    """The template for ``--template``, read once per process (again only if the file changes).

    Raises :class:`ConfigError` naming the file and the problem."""
    path = template_path(name_or_path)
    try:
        changed = path.stat().st_mtime_ns
    except OSError as exc:
        raise ConfigError(f"template {path}: {exc.strerror}") from None
    return _load(str(path), changed)


@lru_cache(maxsize=16)
def _load(path: str, changed: int) -> Template:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"template {path}: not readable TOML: {exc}") from None
    unknown = sorted(set(data) - set(TEMPLATE_KEYS))
    if unknown:
        raise ConfigError(f"template {path}: unknown key {', '.join(unknown)} (known: {', '.join(TEMPLATE_KEYS)})")
    entries = data.get("field")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"template {path}: no [[field]] entries")
    date_order = _date_order(f"template {path}", data.get("date_order", "MDY"))
    fields = [_field_spec(path, number, entry, date_order) for number, entry in enumerate(entries, start=1)]
    names: set[str] = set()
    owners: dict[str, str] = {}  # label, compacted → field
    roles: dict[str, str] = {}  # role → field
    for spec in fields:
        if spec.name in names:
            raise ConfigError(f"template {path}: field {spec.name!r} is defined twice")
        names.add(spec.name)
        if spec.role and roles.setdefault(spec.role, spec.name) != spec.name:
            raise ConfigError(f"template {path}: role {spec.role!r} is given to both {roles[spec.role]!r} and "
                              f"{spec.name!r} (a role is one field's)")
        for label in (*spec.labels, *spec.weak_labels):
            key = re.sub(r"[^a-z0-9#]", "", label.lower())
            if owners.setdefault(key, spec.name) != spec.name:
                raise ConfigError(f"template {path}: label {label!r} belongs to both {owners[key]!r} and {spec.name!r}")
    return Template(str(data.get("name") or Path(path).stem), path, tuple(fields))


def _date_order(where: str, order: Any) -> str:
    if order not in DATE_ORDERS:
        raise ConfigError(f"{where}: date_order must be one of {', '.join(DATE_ORDERS)}, not {order!r}")
    return str(order)


def _labels(where: str, key: str, labels: Any) -> tuple[str, ...]:
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, list) or not all(
            isinstance(label, str) and re.search(r"[A-Za-z0-9#]", label) for label in labels):
        raise ConfigError(f"{where}: needs {key}, a list of strings with letters or digits")
    return tuple(labels)


def _pattern(where: str, pattern: Any) -> str | None:
    """A field's regex, checked: it compiles, and it cannot match nothing at all (a value of "" from
    "[0-9]*" would count as found)."""
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise ConfigError(f"{where}: pattern must be a string")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{where}: bad pattern: {exc}") from None
    if _matches_empty(compiled):
        raise ConfigError(f"{where}: pattern {pattern!r} can match an empty value; make it take at least one "
                          f"character (+ instead of *, no optional-only pattern)")
    return pattern


def _matches_empty(compiled: re.Pattern[str]) -> bool:
    """Whether the regex can match without taking a character (``[0-9]*``, ``(?:x)?``, ``\\b``)."""
    try:
        from re import _parser  # the shortest match a regex can make, exactly
        return bool(_parser.parse(compiled.pattern, compiled.flags).getwidth()[0] == 0)
    except Exception:  # noqa: BLE001 - the parser is private: probe strings where it is not there
        probes = ("", " ", "a", "A", "0", "-", "#", "A-1", "No. 1")
        return any(match.end() == match.start() for probe in probes for match in compiled.finditer(probe))


def _field_spec(path: str, number: int, entry: Any, date_order: str = "MDY") -> FieldSpec:
    if not isinstance(entry, dict):
        raise ConfigError(f"template {path}: field {number} is not a table")
    name = entry.get("name")
    where = f"template {path}, field {number} ({name if isinstance(name, str) else 'no name'})"
    unknown = sorted(set(entry) - set(FIELD_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(unknown)} (known: {', '.join(FIELD_KEYS)})")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ConfigError(f"{where}: needs a name of letters, digits and underscores")
    labels = _labels(where, "labels", entry.get("labels", []))
    weak_labels = _labels(where, "weak_labels", entry.get("weak_labels", []))
    if not labels and not weak_labels:
        raise ConfigError(f"{where}: needs labels, a list of strings with letters or digits")
    kind = entry.get("type", "text")
    if kind not in TYPES:
        raise ConfigError(f"{where}: type must be one of {', '.join(TYPES)}, not {kind!r}")
    unit = entry.get("unit", "lb")
    if unit not in UNITS:
        raise ConfigError(f"{where}: unit must be one of {', '.join(UNITS)}, not {unit!r}")
    if "unit" in entry and kind != "weight":
        raise ConfigError(f"{where}: a unit is for weight fields, not {kind}")
    pattern = _pattern(where, entry.get("pattern"))
    required = entry.get("required", False)
    if not isinstance(required, bool):
        raise ConfigError(f"{where}: required must be true or false, not {required!r}")
    if "date_order" in entry and kind != "date":
        raise ConfigError(f"{where}: a date_order is for date fields, not {kind}")
    order = _date_order(where, entry.get("date_order", date_order))
    role = entry.get("role")
    if role is not None:
        problem = role_problem(role, kind, unit) if isinstance(role, str) else f"role must be a string, not {role!r}"
        if problem:
            raise ConfigError(f"{where}: {problem}")
    return FieldSpec(name, labels, kind, unit, pattern, required, weak_labels, order, role)
