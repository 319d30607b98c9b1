"""``pagemill sample``: an archive of scanned-looking truck and weigh tickets with ground truth.

Each page is one ticket drawn with pillow at 300 DPI on a half-letter page (8.5 × 5.5 in) in one
of four layouts:

- ``list``: one "Label: value" a line, two fields on some lines, weights in lb;
- ``columns``: labels in a left column, values in a right one, weights in lbs, 12-hour times;
- ``stacked``: small upper-case labels with each value on the line below, two fields a row;
- ``metric``: a monospaced printout, "LABEL: value", weights in kg and net tonnes.

Label synonyms ("Ticket No." / "Ticket #" / "Scale Ticket", "Hauler" / "Carrier", ...) and date
forms (2026-03-14, 03/14/2026, 14 Mar 2026, March 14, 2026) vary with the layout and the page.
Every page has a company header and a weighmaster's footer; some pages get speckles, a slight
rotation (at most 1.5°) and a mild blur. Documents hold 1 to 5 tickets and are image-only PDFs
(one full-page JPEG a page), as a scanner makes them; one truncated PDF is added when ``broken``.

Archives of ``REVIEW_MIN_PAGES`` pages or more hold three tickets a person must look at, as real
archives do, on pages chosen by the seed: one whose printed net weight is not gross − tare
(``net_mismatch``), one that repeats the ticket number of an earlier ticket (``duplicate_ticket``:
whichever of the two pages the run records second is flagged) and one, in the ``list`` layout,
whose truck number is printed faded, as by a worn ribbon (``low_confidence``).

``truth.jsonl`` holds a line per page: ``{"document", "page", "layout", "clean", "fields",
"expect_review"}`` with the fields as printed and as extraction gives them (ISO dates, HH:MM
times, weights in lb as ints converted from kg the way the bundled template converts them, net
tons with two decimals); ``expect_review`` lists the issue codes the page is meant to raise
(empty for most), and a duplicate's line also has ``duplicate_of: {"document", "page"}`` (that page
is flagged too: a repeated ticket number sends every page that carries it to review). A page
with noise or a review case is not ``clean``. The same seed gives the same bytes.

Generating again into the same folder replaces the previous sample: its ``tickets-NNNN.pdf``,
``broken-truncated.pdf`` and ``truth.jsonl`` are removed first; no other file is touched.
"""

from __future__ import annotations

import dataclasses
import io
import json
import random
import re
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from engine.errors import ConfigError
from plugins.template_values import convert_weight

DPI = 300
PAGE_SIZE = (2550, 1650)  # 8.5 × 5.5 in at 300 DPI
JPEG_QUALITY = 85
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FIXED_DATES = {"creationDate": time.gmtime(1767225600), "modDate": time.gmtime(1767225600)}  # same seed, same bytes
NOISY_SHARE = 0.35  # pages with speckles and, mostly, rotation and blur
REVIEW_MIN_PAGES = 6  # smaller samples stay without review cases
FADED_FIELD = "truck"  # printed by a worn ribbon on one review page: read, but with low confidence
FADED_STREAKS = 5  # white streaks through the value's strokes...
FADED_STREAK_WIDTH = 3  # ...this many pixels wide (a little more and tesseract sees nothing at all)
TICKET_FILE = re.compile(r"tickets-\d{4}\.pdf")
BROKEN_NAME = "broken-truncated.pdf"
TRUTH_NAME = "truth.jsonl"

COMPANIES = ("Granite Ridge Aggregates", "Blue River Sand & Gravel", "Summit Materials Yard", "Northfield Quarry",
             "Cedar Hollow Stone Co")
CARRIERS = ("Ridge Line Trucking", "Delgado Hauling", "Mason Bros Transport", "Kettle Creek Freight",
            "Pioneer Haulers", "Sandoval & Sons")
MATERIALS = ("Crushed Stone", "Fill Sand", "Asphalt Millings", "Screened Topsoil", "Rip Rap", "Pea Gravel",
             "Base Course", "Washed Concrete Sand")
WEIGHMASTERS = ("Rosa Alvarez", "Dale Whitaker", "Priya Natarajan", "Tom Brennan")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
FIELDS = ("ticket_number", "date", "time", "truck", "carrier", "job", "material", "gross_lb", "tare_lb", "net_lb",
          "net_tons")


@dataclass(frozen=True)
class SampleArchive:
    documents: list[Path]
    truth_path: Path
    broken_path: Path | None


@dataclass(frozen=True)
class ReviewCase:
    """What makes one page worth a person's look (at most one per page)."""

    code: str  # the issue code the page should raise: net_mismatch, duplicate_ticket, low_confidence
    net_off_lb: int = 0  # net_mismatch: printed net minus the true net
    duplicate_of: int = -1  # duplicate_ticket: the index of the earlier page


@dataclass(frozen=True)
class Ticket:
    ticket_number: str
    day: date
    hour: int
    minute: int
    truck: str
    carrier: str
    job: str
    material: str
    gross_lb: int
    tare_lb: int


@dataclass(frozen=True)
class Layout:
    """How one kind of ticket prints: its labels, arrangement, units and font."""

    name: str
    style: str  # "list", "columns" or "stacked"
    labels: dict[str, str]  # field name → printed label
    font: str  # a DejaVu file name
    weight_unit: str = "lb"  # "lb", "lbs" or "kg"
    twelve_hour: bool = False
    upper_labels: bool = False
    same_line: tuple[tuple[str, str], ...] = ()  # fields printed side by side on one line (list style)


LAYOUTS: tuple[Layout, ...] = (
    Layout("list", "list", dict(
        ticket_number="Ticket No.", date="Date", time="Time", truck="Truck", carrier="Carrier", job="Job",
        material="Material", gross_lb="Gross Weight", tare_lb="Tare Weight", net_lb="Net Weight",
        net_tons="Net Tons"), "DejaVuSans.ttf", same_line=(("date", "time"), ("truck", "carrier"))),
    Layout("columns", "columns", dict(
        ticket_number="Ticket #", date="Date", time="Time In", truck="Truck No.", carrier="Hauler", job="Job No.",
        material="Product", gross_lb="Gross", tare_lb="Tare", net_lb="Net", net_tons="Tons"),
        "DejaVuSans.ttf", weight_unit="lbs", twelve_hour=True),
    Layout("stacked", "stacked", dict(
        ticket_number="Scale Ticket", date="Date", time="Time", truck="Vehicle", carrier="Carrier", job="Project",
        material="Material", gross_lb="Gross Wt", tare_lb="Tare Wt", net_lb="Net Wt", net_tons="Net Tons"),
        "DejaVuSerif.ttf", upper_labels=True),
    Layout("metric", "list", dict(
        ticket_number="Ticket No.", date="Date", time="Time In", truck="Vehicle", carrier="Hauler", job="Job No.",
        material="Product", gross_lb="Gross", tare_lb="Tare", net_lb="Net", net_tons="Net Tonnes"),
        "DejaVuSansMono.ttf", weight_unit="kg", upper_labels=True),
)


def _font(name: str, size: int) -> Any:
    path = FONT_DIR / name
    if path.is_file():
        return ImageFont.truetype(str(path), size)
    fallback = FONT_DIR / "DejaVuSans.ttf"
    if fallback.is_file():
        return ImageFont.truetype(str(fallback), size)
    return ImageFont.load_default(size=size)


def random_ticket(rng: random.Random) -> Ticket:
    tare = rng.randrange(24000, 36000, 20)
    gross = tare + rng.randrange(20000, 52000, 20)
    day = date(2025, 1, 1) + timedelta(days=rng.randrange(0, 420))
    return Ticket(
        ticket_number=str(rng.randrange(100000, 999999)),
        day=day,
        hour=rng.randrange(5, 19),
        minute=rng.randrange(0, 60),
        truck=f"TR-{rng.randrange(100, 9999)}",
        carrier=rng.choice(CARRIERS),
        job=f"{day.year % 100:02d}-{rng.randrange(1, 9999):04d}",  # year and number, as job numbers go
        material=rng.choice(MATERIALS),
        gross_lb=gross,
        tare_lb=tare,
    )


def date_text(day: date, style: int) -> str:
    """One of the four date forms tickets print."""
    month = MONTHS[day.month - 1]
    return (day.isoformat(), day.strftime("%m/%d/%Y"), f"{day.day} {month[:3]} {day.year}",
            f"{month} {day.day}, {day.year}")[style % 4]


def _time_text(ticket: Ticket, twelve_hour: bool) -> str:
    if not twelve_hour:
        return f"{ticket.hour:02d}:{ticket.minute:02d}"
    hour = ticket.hour % 12 or 12
    return f"{hour}:{ticket.minute:02d} {'PM' if ticket.hour >= 12 else 'AM'}"


def ticket_values(ticket: Ticket, layout: Layout, rng: random.Random,
                  net_off_lb: int = 0) -> tuple[dict[str, str], dict[str, Any]]:
    """The printed value of every field, and the truth extraction should give for them.
    ``net_off_lb`` prints a net that is not gross − tare (net tons follow the printed net)."""
    if layout.weight_unit == "kg":
        gross_kg = round(convert_weight(ticket.gross_lb, "lb", "kg"))
        tare_kg = round(convert_weight(ticket.tare_lb, "lb", "kg"))
        net_kg = gross_kg - tare_kg + round(convert_weight(net_off_lb, "lb", "kg"))
        net_tonnes = round(net_kg / 1000, 2)
        weights = {"gross_lb": f"{gross_kg:,} kg", "tare_lb": f"{tare_kg:,} kg", "net_lb": f"{net_kg:,} kg",
                   "net_tons": f"{net_tonnes:.2f} t"}
        gross_lb, tare_lb, net_lb = (round(convert_weight(kg, "kg", "lb")) for kg in (gross_kg, tare_kg, net_kg))
        net_tons = round(convert_weight(net_tonnes, "t", "ton"), 2)
    else:
        gross_lb, tare_lb = ticket.gross_lb, ticket.tare_lb
        net_lb = gross_lb - tare_lb + net_off_lb
        net_tons = round(net_lb / 2000, 2)
        unit = layout.weight_unit
        weights = {"gross_lb": f"{gross_lb:,} {unit}", "tare_lb": f"{tare_lb:,} {unit}",
                   "net_lb": f"{net_lb:,} {unit}", "net_tons": f"{net_tons:.2f}"}
    printed = {
        "ticket_number": ticket.ticket_number, "date": date_text(ticket.day, rng.randrange(4)),
        "time": _time_text(ticket, layout.twelve_hour), "truck": ticket.truck, "carrier": ticket.carrier,
        "job": ticket.job, "material": ticket.material, **weights,
    }
    truth = {
        "ticket_number": ticket.ticket_number, "date": ticket.day.isoformat(),
        "time": f"{ticket.hour:02d}:{ticket.minute:02d}", "truck": ticket.truck, "carrier": ticket.carrier,
        "job": ticket.job, "material": ticket.material, "gross_lb": gross_lb, "tare_lb": tare_lb, "net_lb": net_lb,
        "net_tons": net_tons,
    }
    return printed, truth


def _label(layout: Layout, name: str) -> str:
    label = layout.labels[name]
    return label.upper() if layout.upper_labels else label


def _draw_header(draw: ImageDraw.ImageDraw, rng: random.Random, layout: Layout) -> None:
    company = rng.choice(COMPANIES)
    draw.text((120, 70), company.upper(), font=_font("DejaVuSans-Bold.ttf", 62), fill=0)
    address = f"{rng.randrange(100, 9999)} Quarry Road, Certified Public Scale No. {rng.randrange(1, 9)}"
    draw.text((120, 160), address, font=_font(layout.font, 32), fill=50)
    draw.line((120, 225, PAGE_SIZE[0] - 120, 225), fill=0, width=4)


def _draw_fields(draw: ImageDraw.ImageDraw, layout: Layout, printed: dict[str, str],
                 boxes: dict[str, tuple[int, int, int, int]] | None = None) -> int:
    """Draws the fields, noting the box of each value in ``boxes``; returns the y below the last one."""
    normal = _font(layout.font, 44)
    top = 275

    def value(at: tuple[float, float], name: str) -> None:
        draw.text(at, printed[name], font=normal, fill=0)
        if boxes is not None:
            left, upper, right, lower = draw.textbbox(at, printed[name], font=normal)
            boxes[name] = (round(left), round(upper), round(right), round(lower))

    if layout.style == "columns":
        for row, name in enumerate(FIELDS):
            draw.text((160, top + row * 100), _label(layout, name), font=normal, fill=0)
            value((880, top + row * 100), name)
        return top + len(FIELDS) * 100
    if layout.style == "stacked":
        small = _font(layout.font, 32)
        for index, name in enumerate(FIELDS):
            x, y = 160 + (index % 2) * 1150, top + (index // 2) * 190
            draw.text((x, y), _label(layout, name), font=small, fill=60)
            value((x, y + 52), name)
        return top + (len(FIELDS) + 1) // 2 * 190
    partners = dict(layout.same_line)
    skipped = set(partners.values())
    row = 0
    for name in FIELDS:
        if name in skipped:
            continue
        y = top + row * 92
        for x, shown in ((160, name), (1350, partners.get(name))):
            if shown is None:
                continue
            head = f"{_label(layout, shown)}: "
            draw.text((x, y), head + printed[shown], font=normal, fill=0)
            if boxes is not None:
                _, upper, right, lower = draw.textbbox((x, y), head + printed[shown], font=normal)
                boxes[shown] = (round(x + draw.textlength(head, font=normal)), round(upper), round(right), round(lower))
        row += 1
    return top + row * 92


def fade(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int]) -> None:
    """A worn ribbon: white streaks through a value's strokes, so that it is read, but unsurely."""
    left, top, right, bottom = box
    for number in range(1, FADED_STREAKS + 1):
        y = top + number * (bottom - top) // (FADED_STREAKS + 1)
        draw.line((left - 4, y, right + 4, y), fill=255, width=FADED_STREAK_WIDTH)


def _scan_noise(image: Image.Image, rng: random.Random) -> Image.Image:
    """Speckles, mostly a slight rotation and a mild blur: a sheet through a tired scanner."""
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randrange(600, 1200)):
        x, y = rng.randrange(PAGE_SIZE[0]), rng.randrange(PAGE_SIZE[1])
        draw.point((x, y), fill=rng.randrange(0, 160))
    for _ in range(rng.randrange(10, 40)):  # a few specks of dust
        x, y = rng.randrange(PAGE_SIZE[0]), rng.randrange(PAGE_SIZE[1])
        draw.rectangle((x, y, x + 1, y + 1), fill=rng.randrange(40, 160))
    if rng.random() < 0.8:
        image = image.rotate(rng.uniform(-1.5, 1.5), resample=Image.Resampling.BICUBIC, fillcolor=255)
    if rng.random() < 0.7:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 0.8)))
    return image


def draw_ticket(ticket: Ticket, layout: Layout, rng: random.Random, noisy: bool,
                case: ReviewCase | None = None) -> tuple[Image.Image, dict[str, Any]]:
    """One ticket page as a grayscale 300-DPI image, and its truth."""
    printed, truth = ticket_values(ticket, layout, rng, case.net_off_lb if case else 0)
    image = Image.new("L", PAGE_SIZE, 255)
    draw = ImageDraw.Draw(image)
    _draw_header(draw, rng, layout)
    boxes: dict[str, tuple[int, int, int, int]] = {}
    bottom = _draw_fields(draw, layout, printed, boxes)
    if case is not None and case.code == "low_confidence":
        fade(draw, boxes[FADED_FIELD])
    footer = f"Weighmaster: {rng.choice(WEIGHMASTERS)}        Driver signature ____________________"
    draw.text((160, min(bottom + 40, PAGE_SIZE[1] - 110)), footer, font=_font(layout.font, 30), fill=40)
    if noisy:
        image = _scan_noise(image, rng)
    return image, truth


def review_cases(pages: int, seed: int) -> dict[int, ReviewCase]:
    """{page index: case}: three pages chosen by the seed (none below REVIEW_MIN_PAGES pages).

    A generator of its own, so that every other page is the same with or without the cases."""
    if pages < REVIEW_MIN_PAGES:
        return {}
    rng = random.Random(f"pagemill-sample-review-{seed}")
    duplicate, mismatch, faded = rng.sample(range(1, pages), 3)
    off = rng.choice((-1, 1)) * rng.randrange(1500, 3000, 20)
    return {
        duplicate: ReviewCase("duplicate_ticket", duplicate_of=rng.randrange(0, duplicate)),
        mismatch: ReviewCase("net_mismatch", net_off_lb=off),
        faded: ReviewCase("low_confidence"),
    }


def _clear_previous(out_dir: Path, scans: Path) -> None:
    """Refuse a file where a folder belongs; remove what an earlier sample wrote, nothing else."""
    for folder in (out_dir, scans):
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{folder} is a file; the sample needs a folder there")
    if scans.is_dir():
        for path in scans.iterdir():
            if (TICKET_FILE.fullmatch(path.name) or path.name == BROKEN_NAME) and path.is_file():
                path.unlink()
    (out_dir / TRUTH_NAME).unlink(missing_ok=True)


def generate_sample(out_dir: Path, pages: int, seed: int = 0, broken: bool = True) -> SampleArchive:
    """Write ``pages`` ticket pages as PDFs of 1–5 pages into ``out_dir/scans`` and the ground truth
    into ``out_dir/truth.jsonl`` (beside the scans, so that a run over the scans never reads it),
    replacing an earlier sample there. ``pages`` below 1 is a ConfigError."""
    if pages < 1:
        raise ConfigError(f"a sample needs at least 1 page, not {pages}")
    out_dir = Path(out_dir)
    rng = random.Random(seed)
    scans = out_dir / "scans"
    _clear_previous(out_dir, scans)
    scans.mkdir(parents=True, exist_ok=True)
    cases = review_cases(pages, seed)
    documents: list[Path] = []
    truth_rows: list[dict[str, Any]] = []
    tickets: list[Ticket] = []
    remaining, number = pages, 0
    while remaining > 0:
        count = min(remaining, rng.randint(1, 5))
        name = f"tickets-{number:04d}.pdf"
        images = []
        for page in range(count):
            layout = rng.choice(LAYOUTS)
            noisy = rng.random() < NOISY_SHARE
            ticket = random_ticket(rng)
            case = cases.get(len(tickets))
            if case is not None and case.code == "low_confidence":
                layout = LAYOUTS[0]  # a faded value of this layout is read with low confidence
            if case is not None and case.code == "duplicate_ticket":
                ticket = dataclasses.replace(ticket, ticket_number=tickets[case.duplicate_of].ticket_number)
            image, truth = draw_ticket(ticket, layout, rng, noisy, case)
            images.append(image)
            row: dict[str, Any] = {"document": name, "page": page + 1, "layout": layout.name,
                                   "clean": not noisy and case is None, "fields": truth,
                                   "expect_review": [case.code] if case else []}
            if case is not None and case.code == "duplicate_ticket":
                first = truth_rows[case.duplicate_of]
                row["duplicate_of"] = {"document": first["document"], "page": first["page"]}
            truth_rows.append(row)
            tickets.append(ticket)
        path = scans / name
        images[0].save(path, "PDF", save_all=True, append_images=images[1:], resolution=DPI, quality=JPEG_QUALITY,
                       **FIXED_DATES)
        documents.append(path)
        remaining -= count
        number += 1
    broken_path = None
    if broken:
        buffer = io.BytesIO()
        image, _ = draw_ticket(random_ticket(rng), LAYOUTS[0], rng, False)
        image.save(buffer, "PDF", resolution=DPI, quality=JPEG_QUALITY, **FIXED_DATES)
        broken_path = scans / BROKEN_NAME
        broken_path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    truth_path = out_dir / TRUTH_NAME
    truth_path.write_text("".join(json.dumps(row) + "\n" for row in truth_rows), encoding="utf-8")
    return SampleArchive(documents, truth_path, broken_path)
