"""The summary page a PACS viewer shows when it displays neither SR nor SEG: a picture with the
headline and its scope, the version's status and reader, the quality flags, the research-use
line, and the first key image. Its words are the report's (one headline wording,
:func:`vascalc.results.wording.headline_text`)."""

from __future__ import annotations

import textwrap
from io import BytesIO
from pathlib import Path
from typing import Any

from ..errors import ResultError
from ..flags import describe
from ..outputs.dicom_out import SCOPE_WORDS
from ..outputs.versions import ResultVersion
from ..results.document import read_result, scan_of
from ..results.wording import headline_text

WIDTH = 1024
MARGIN = 32
RESEARCH = "Research use only: not for diagnosis or treatment decisions without a physician's review."


def summary_lines(case_dir: Path, version: ResultVersion | None) -> list[tuple[str, str]]:
    """The page's lines as (style, text): title, status, headline, scope, risk, flags."""
    try:
        scan = scan_of(read_result(Path(case_dir) / "result.json"))
    except (ResultError, OSError, KeyError):
        scan = {}
    if version is None or version.status == "draft":
        status = "DRAFT" + (f" v{version.number}" if version else "") + \
            ": automated result, not read by a reader"
    else:
        when = version.verified_at.replace("T", " ")[:16]
        status = (f"{version.status.upper()} v{version.number}: read by {version.reader}"
                  f"{' on ' + when + ' UTC' if when else ''}")
    lines = [("title", "vascalc calcium summary"), ("status", status)]
    if scan.get("status") == "ok":
        lines.append(("headline", headline_text(scan)))
        scope = str(scan.get("scope") or "")
        lines.append(("text", f"Scope: {SCOPE_WORDS.get(scope, scope)}"))
        if scan.get("risk_category"):
            drs = f", CAC-DRS {scan['cac_drs']}" if scan.get("cac_drs") else ""
            lines.append(("text", f"Risk category {scan['risk_category']}{drs}"))
        if scan.get("reader") and scan.get("unlabelled_agatston") not in (None, 0, 0.0):
            lines.append(("text", f"Left unlabelled by the reader: Agatston "
                          f"{scan['unlabelled_agatston']:.1f}"))
        flags = [f for f in str(scan.get("quality_flags") or "").split(";") if f]
        for f in flags:
            lines.append(("flag", f"Flag {f}: {describe(f)}"))
    elif scan:
        lines.append(("headline", f"Not scored: {scan.get('error_code', '')}"))
    lines.append(("research", RESEARCH))
    return lines


def summary_png(case_dir: Path, version: ResultVersion | None) -> bytes:
    """The summary page as PNG bytes (the key image below the text, when there is one)."""
    from PIL import Image, ImageDraw, ImageFont  # lazy: only the DICOM node

    sizes = {"title": 30, "status": 24, "headline": 24, "text": 20, "flag": 18, "research": 18}
    colours = {"status": (150, 0, 0) if version is None or version.status == "draft"
               else (0, 100, 0), "flag": (140, 70, 0)}
    rendered: list[tuple[Any, str, tuple[int, int, int], int]] = []
    for style, text in summary_lines(case_dir, version):
        size = sizes.get(style, 20)
        font = ImageFont.load_default(size=size)
        for part in textwrap.wrap(text, width=int((WIDTH - 2 * MARGIN) / (size * 0.52))) or [""]:
            rendered.append((font, part, colours.get(style, (0, 0, 0)), int(size * 1.35)))
    key = Path(case_dir) / "key_image_1.png"
    image = Image.open(key).convert("RGB") if key.is_file() else None
    if image is not None and image.width > WIDTH - 2 * MARGIN:
        scale = (WIDTH - 2 * MARGIN) / image.width
        image = image.resize((WIDTH - 2 * MARGIN, max(1, int(image.height * scale))))
    text_h = sum(h for *_, h in rendered)
    height = MARGIN * 3 + text_h + (image.height if image is not None else 0)
    page = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(page)
    y = MARGIN
    for font, part, colour, h in rendered:
        draw.text((MARGIN, y), part, fill=colour, font=font)
        y += h
    if image is not None:
        page.paste(image, (MARGIN, y + MARGIN))
    buf = BytesIO()
    page.save(buf, format="PNG")
    return buf.getvalue()
