"""``pagemill sample``: an archive of scanned-looking truck and weigh tickets with ground truth.

Each page is a ticket drawn with pillow at 300 DPI in one of several layouts (label: value
lists, two columns, values below their labels, weights in lb or in kg), with a company header,
and on some pages speckle noise, a slight rotation and blur; documents hold 1 to 5 tickets and
are saved as image-only PDFs (one full-page image a page), as a scanner makes them. ``truth.jsonl``
holds, per page, the fields as extraction should give them. One truncated PDF is added when
``broken``. The same seed gives the same archive.
"""

from __future__ import annotations

import io
import json
import random
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageFont

DPI = 300
PAGE_SIZE = (2550, 1650)  # 8.5 × 5.5 in at 300 DPI
FONT_PATHS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
KG_PER_LB = 0.45359237
COMPANIES = ["Granite Ridge Aggregates", "Blue River Sand & Gravel", "Summit Materials Yard", "Northfield Quarry"]
CARRIERS = ["Ridge Line Trucking", "Delgado Hauling", "Mason Bros Transport", "Kettle Creek Freight", "Pioneer Haulers"]
MATERIALS = ["Crushed Stone", "Fill Sand", "Asphalt Millings", "Screened Topsoil", "Rip Rap", "Pea Gravel", "Base Course"]
FIXED_DATES = {"creationDate": time.gmtime(1767225600), "modDate": time.gmtime(1767225600)}  # same seed, same bytes
MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December"]


@dataclass(frozen=True)
class SampleArchive:
    documents: list[Path]
    truth_path: Path
    broken_path: Path | None


@dataclass(frozen=True)
class Ticket:
    ticket_number: str
    day: date
    time: str
    truck: str
    carrier: str
    job: str
    material: str
    gross_lb: int
    tare_lb: int

    @property
    def net_lb(self) -> int:
        return self.gross_lb - self.tare_lb


def _font(size: int) -> Any:
    for path in FONT_PATHS:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def random_ticket(rng: random.Random) -> Ticket:
    tare = rng.randrange(24000, 36000, 20)
    gross = tare + rng.randrange(20000, 52000, 20)
    return Ticket(
        ticket_number=str(rng.randrange(100000, 999999)),
        day=date(2026, 1, 1) + timedelta(days=rng.randrange(0, 300)),
        time=f"{rng.randrange(6, 18):02d}:{rng.randrange(0, 60):02d}",
        truck=f"TR-{rng.randrange(100, 9999)}",
        carrier=rng.choice(CARRIERS),
        job=f"J-{rng.randrange(1000, 9999)}",
        material=rng.choice(MATERIALS),
        gross_lb=gross,
        tare_lb=tare,
    )


def _date_text(day: date, style: int) -> str:
    return [day.isoformat(), day.strftime("%m/%d/%Y"), f"{day.day} {MONTH_NAMES[day.month - 1][:3]} {day.year}",
            f"{MONTH_NAMES[day.month - 1]} {day.day}, {day.year}"][style % 4]


def layout_lines(ticket: Ticket, layout: int, rng: random.Random) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(label, value) rows for a layout, and the truth extraction should give."""
    metric = layout == 3
    if metric:
        gross_kg = round(ticket.gross_lb * KG_PER_LB)
        tare_kg = round(ticket.tare_lb * KG_PER_LB)
        net_kg = gross_kg - tare_kg
        gross_lb, tare_lb, net_lb = (round(kg / KG_PER_LB) for kg in (gross_kg, tare_kg, net_kg))
        weights = [("Gross", f"{gross_kg:,} kg"), ("Tare", f"{tare_kg:,} kg"), ("Net", f"{net_kg:,} kg")]
    else:
        gross_lb, tare_lb, net_lb = ticket.gross_lb, ticket.tare_lb, ticket.net_lb
        unit = ["lb", "lbs", "lb"][layout % 3]
        names = [("Gross Weight", "Tare Weight", "Net Weight"), ("Gross", "Tare", "Net"),
                 ("Gross Wt", "Tare Wt", "Net Wt")][layout % 3]
        weights = [(names[0], f"{gross_lb:,} {unit}"), (names[1], f"{tare_lb:,} {unit}"), (names[2], f"{net_lb:,} {unit}")]
    tons = round(net_lb / 2000.0, 2)
    labels = [
        ("Ticket No.", "Ticket #", "Scale Ticket", "Ticket No.")[layout % 4],
        "Date",
        ("Time", "Time In", "Time", "Time In")[layout % 4],
        ("Truck", "Truck No.", "Vehicle", "Truck")[layout % 4],
        ("Carrier", "Hauler", "Carrier", "Hauler")[layout % 4],
        ("Job", "Job No.", "Project", "Job")[layout % 4],
        ("Material", "Product", "Material", "Product")[layout % 4],
    ]
    values = [ticket.ticket_number, _date_text(ticket.day, rng.randrange(4)), ticket.time, ticket.truck,
              ticket.carrier, ticket.job, ticket.material]
    rows = list(zip(labels, values)) + weights + [(("Net Tons", "Tons", "Net Tons", "Net Tons")[layout % 4], f"{tons:.2f}")]
    truth = {"ticket_number": ticket.ticket_number, "date": ticket.day.isoformat(), "time": ticket.time,
             "truck": ticket.truck, "carrier": ticket.carrier, "job": ticket.job, "material": ticket.material,
             "gross_lb": gross_lb, "tare_lb": tare_lb, "net_lb": net_lb, "net_tons": tons}
    return rows, truth


def draw_ticket(ticket: Ticket, layout: int, rng: random.Random, noisy: bool) -> tuple[Image.Image, dict[str, Any]]:
    rows, truth = layout_lines(ticket, layout, rng)
    image = Image.new("L", PAGE_SIZE, 255)
    draw = ImageDraw.Draw(image)
    big, normal = _font(64), _font(44)
    company = rng.choice(COMPANIES)
    draw.text((120, 80), company.upper(), font=big, fill=0)
    draw.text((120, 170), f"{rng.randrange(100, 9999)} Quarry Road · Weighmaster Certificate", font=_font(34), fill=40)
    draw.line((120, 240, PAGE_SIZE[0] - 120, 240), fill=0, width=4)
    top = 300
    if layout in (0, 3):  # one "Label: value" per line
        for row, (label, value) in enumerate(rows):
            draw.text((160, top + row * 104), f"{label}: {value}", font=normal, fill=0)
    elif layout == 1:  # two columns: labels left, values right
        for row, (label, value) in enumerate(rows):
            y = top + row * 104
            draw.text((160, y), label, font=normal, fill=0)
            draw.text((900, y), value, font=normal, fill=0)
    else:  # values below their labels, two fields a row
        for index, (label, value) in enumerate(rows):
            column, row = index % 2, index // 2
            x, y = 160 + column * 1150, top + row * 200
            draw.text((x, y), label.upper(), font=_font(34), fill=60)
            draw.text((x, y + 56), value, font=normal, fill=0)
    if noisy:
        for _ in range(900):
            x, y = rng.randrange(PAGE_SIZE[0]), rng.randrange(PAGE_SIZE[1])
            draw.point((x, y), fill=rng.randrange(0, 120))
        image = image.rotate(rng.uniform(-1.5, 1.5), resample=Image.Resampling.BICUBIC, fillcolor=255)
        image = image.filter(ImageFilter.GaussianBlur(0.6))
    return image, truth


def generate_sample(out_dir: Path, pages: int, seed: int = 0, broken: bool = True) -> SampleArchive:
    """Write ``pages`` ticket pages as PDFs of 1–5 pages into ``out_dir/scans`` and the ground
    truth into ``out_dir/truth.jsonl`` (beside the scans, so a run over the scans never reads it)."""
    rng = random.Random(seed)
    scans = out_dir / "scans"
    scans.mkdir(parents=True, exist_ok=True)
    documents: list[Path] = []
    truth_rows: list[dict[str, Any]] = []
    remaining, number = pages, 0
    while remaining > 0:
        count = min(remaining, rng.randint(1, 5))
        images = []
        name = f"tickets-{number:04d}.pdf"
        for page in range(count):
            layout = rng.randrange(4)
            noisy = rng.random() < 0.35
            image, truth = draw_ticket(random_ticket(rng), layout, rng, noisy)
            images.append(image)
            truth_rows.append({"document": name, "page": page + 1, "layout": layout, "clean": not noisy, "fields": truth})
        path = scans / name
        images[0].save(path, "PDF", save_all=True, append_images=images[1:], resolution=DPI, **FIXED_DATES)
        documents.append(path)
        remaining -= count
        number += 1
    broken_path = None
    if broken:
        buffer = io.BytesIO()
        image, _ = draw_ticket(random_ticket(rng), 0, rng, False)
        image.save(buffer, "PDF", resolution=DPI, **FIXED_DATES)
        broken_path = scans / "broken-truncated.pdf"
        broken_path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    truth_path = out_dir / "truth.jsonl"
    truth_path.write_text("".join(json.dumps(row) + "\n" for row in truth_rows), encoding="utf-8")
    return SampleArchive(documents, truth_path, broken_path)
