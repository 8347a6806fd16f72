"""Per-case key images and the coronal MIP, drawn straight into pixels with Pillow.

Each image is the slice in the soft-tissue window (W400/L40), the kept calcium coloured by
density weight or by territory, composed with numpy at the scan's own resolution and scaled
to 600 px by nearest neighbour in physical proportion; then the lesions' circles, orientation
letters (DICOM PS3.3 C.7.6.1.1.1: the patient direction of the row and column axes) and a
20 mm scale bar are drawn on it. The title and the legend are not burned in: the report
prints them beside the image, readable at any size, and the legend lists only the colours
the image shows (:attr:`KeyImage.legend`). No plotting library starts per case (matplotlib
took about 80 ms an image).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BAND_COLOURS = ("#ffd700", "#ff8c00", "#e8112d", "#c71585")  # weight 1, 2, 3, 4
SOFT_TISSUE_WINDOW = (-160.0, 240.0)  # width 400, level 40 HU
#: territory colours: vascular and coronary territories take these in turn; bone, other
#: structures and calcium in no region are drawn in muted colours (not vascular)
TERRITORY_COLOURS = ("#e8112d", "#ff8c00", "#ffd700", "#c71585", "#00c8ff", "#7cfc00",
                     "#ff69b4", "#1e90ff")
APART_COLOURS = {"bone": "#d9d9d9", "other": "#6b8e23", "outside": "#8a6bbf"}



@dataclass(frozen=True)
class KeyImage:
    """One image of the report: its caption, PNG, and the legend of the colours it shows."""

    title: str
    png: bytes
    legend: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Colouring:
    """How kept voxels are coloured: ``index`` (same shape as the image, 0 = none) into
    ``colours``, with ``legend`` (label, colour) pairs."""

    colours: tuple[str, ...]
    legend: tuple[tuple[str, str], ...]

    def shown(self, index: np.ndarray) -> tuple[tuple[str, str], ...]:
        """The legend entries whose colour an image of this colour ``index`` shows."""
        present = {self.colours[i - 1] for i in np.unique(index) if 0 < i <= len(self.colours)}
        return tuple((name, c) for name, c in self.legend if c in present)


def band_legend(index: np.ndarray) -> tuple[tuple[str, str], ...]:
    """The density weights an image shows, as legend entries."""
    present = {int(i) for i in np.unique(index) if 0 < i <= 4}
    return tuple((f"density weight {w}", BAND_COLOURS[w - 1]) for w in sorted(present))


def territory_colouring(names: tuple[str, ...], classes: tuple[str, ...]) -> Colouring:
    """Colour index per region label (0 = outside) and the legend: each vascular or coronary
    territory its own colour; bone, other structures and 'outside' muted, marked not vascular."""
    colours = [APART_COLOURS["outside"]]
    legend = []
    k = 0
    for name, cls in zip(names, classes):
        if cls in ("vascular", "coronary"):
            c = TERRITORY_COLOURS[k % len(TERRITORY_COLOURS)]
            k += 1
            legend.append((name, c))
        else:
            c = APART_COLOURS.get(cls, APART_COLOURS["other"])
        colours.append(c)
    legend += [(f"{cls} (not vascular)", c) for cls, c in APART_COLOURS.items()
               if cls in classes or cls == "outside"]
    return Colouring(tuple(colours), tuple(legend))


def _index(bands, regions):
    """Per voxel: the density band (1-4), or with ``regions`` (a label array) its region
    label + 1; 0 where no calcium was kept."""
    if regions is None:
        return bands
    return np.where(bands > 0, regions.astype(np.int32) + 1, 0)


def _letters(vector) -> str:
    """The patient direction (LPS) a unit vector points to: L/R, P/A, H/F of its largest part
    (DICOM PS3.3 C.7.6.1.1.1)."""
    axis = int(np.argmax(np.abs(vector)))
    return ("LR", "PA", "HF")[axis][0 if vector[axis] > 0 else 1]


_FLIP = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}


def key_images(hu, bands, slices: list[tuple[int, str, list]], spacing_mm, *, regions=None,
               colouring: Colouring | None = None, direction=None) -> list[KeyImage]:
    """Axial slices (soft-tissue window, 600 px) with calcium coloured by density band, or by
    territory when ``regions`` and its ``colouring`` are given; each lesion of ``slices``'
    markers ((row, col, radius) in pixels) circled, orientation letters and a scale bar."""
    d = np.asarray(direction if direction is not None else np.eye(3), dtype=float)
    right, down = _letters(d[:, 2]), _letters(d[:, 1])
    letters = (_FLIP[right], right, _FLIP[down], down)
    out = []
    for k, title, markers in slices:
        index = _index(bands[k], None if regions is None else regions[k])
        png = render(hu[k], index, aspect=spacing_mm[1] / spacing_mm[2], colouring=colouring,
                     markers=markers, spacing_col_mm=spacing_mm[2], letters=letters)
        out.append(KeyImage(title, png, _legend_of(index, colouring)))
    return out


def _legend_of(index: np.ndarray, colouring: Colouring | None) -> tuple[tuple[str, str], ...]:
    return band_legend(index) if colouring is None else colouring.shown(index)


def mip_index(hu, bands, regions=None) -> tuple[np.ndarray, np.ndarray]:
    """The coronal maximum intensity projection (along the rows) and its colour index: the
    densest band, or the region (label + 1) of the densest kept voxel along each ray."""
    mip = hu.max(axis=1)
    if regions is None:
        return mip, bands.max(axis=1)
    kept_hu = np.where(bands > 0, hu, np.iinfo(np.int16).min).astype(np.float32)
    ray = kept_hu.argmax(axis=1)[:, None, :]
    index = np.where(bands.max(axis=1) > 0,
                     np.take_along_axis(regions, ray, axis=1)[:, 0, :].astype(np.int32) + 1, 0)
    return mip, index


def mip_image(mip: np.ndarray, index: np.ndarray, spacing_mm, *, colouring: Colouring | None = None,
              direction=None) -> KeyImage:
    """The coronal MIP of :func:`mip_index` as a key image, head up: orientation letters
    (the column axis across, the slice axis up and down) and a 20 mm scale bar."""
    d = np.asarray(direction if direction is not None else np.eye(3), dtype=float)
    along = _letters(d[:, 0])  # where increasing slice index points
    if along == "H":  # slices run feet to head: turn the projection head up
        mip, index = mip[::-1], index[::-1]
        along = "F"
    right = _letters(d[:, 2])
    letters = (_FLIP[right], right, _FLIP[along], along)
    png = render(mip, index, aspect=spacing_mm[0] / spacing_mm[2], colouring=colouring,
                 spacing_col_mm=spacing_mm[2], letters=letters)
    return KeyImage("coronal maximum intensity projection", png, _legend_of(index, colouring))


SIZE = 600  # px, square
MARKER = (0, 255, 102)


@lru_cache(maxsize=8)
def _font(size: int, bold: bool = False):
    """Pillow's bundled TrueType font (Pillow >= 10.1 with FreeType), else its bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # pragma: no cover - old Pillow or no FreeType
        return ImageFont.load_default()


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def compose(img: np.ndarray, index: np.ndarray, colours) -> np.ndarray:
    """(rows, cols, 3) uint8: the image in the soft-tissue window, each voxel with index i > 0
    blended (85 %) with ``colours[i - 1]``."""
    lo, hi = SOFT_TISSUE_WINDOW
    grey = np.clip((np.asarray(img, dtype=np.float32) - lo) * (255.0 / (hi - lo)), 0, 255)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    hit = index > 0
    if hit.any():
        lut = np.array([_rgb(c) for c in colours], dtype=np.float32)
        idx = np.clip(index[hit].astype(np.int64) - 1, 0, len(colours) - 1)
        rgb[hit] = 0.15 * rgb[hit] + 0.85 * lut[idx]
    return rgb.astype(np.uint8)


def _place(shape, aspect: float) -> tuple[int, int, int, int]:
    """Where the image goes: x0, y0, width, height, fitting the area below the title with
    rows ``aspect`` times as tall as columns are wide (physical proportions)."""
    rows, cols = shape
    area_w, area_h = SIZE - 8, SIZE - 8
    phys_w, phys_h = cols, rows * aspect
    scale = min(area_w / phys_w, area_h / phys_h)
    w, h = max(1, round(phys_w * scale)), max(1, round(phys_h * scale))
    return (SIZE - w) // 2, (SIZE - h) // 2, w, h


def render(img: np.ndarray, index: np.ndarray, *, aspect: float,
           colouring: Colouring | None = None, markers=(), spacing_col_mm: float | None = None,
           letters: tuple[str, str, str, str] | None = None) -> bytes:
    """One PNG (600 x 600 px). ``markers``: (row, col, radius) in voxels; ``letters``: the
    directions at the left, right, top and bottom edges; a scale bar when ``spacing_col_mm``."""
    colours = BAND_COLOURS if colouring is None else colouring.colours
    x0, y0, w, h = _place(img.shape, aspect)
    pic = Image.fromarray(compose(img, index, colours), "RGB").resize((w, h), Image.Resampling.NEAREST)
    canvas = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    canvas.paste(pic, (x0, y0))
    overlay = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    sx, sy = w / img.shape[1], h / img.shape[0]
    for r, c, radius in markers:
        cx, cy, rad = x0 + (c + 0.5) * sx, y0 + (r + 0.5) * sy, max(radius * sx, 4.0)
        draw.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), outline=MARKER, width=2)
    if letters is not None:
        font = _font(18)
        left, right, top, bottom = letters
        for text, (x, y) in ((left, (x0 + 0.03 * w, y0 + h / 2)), (right, (x0 + 0.97 * w, y0 + h / 2)),
                             (top, (x0 + w / 2, y0 + 0.04 * h)), (bottom, (x0 + w / 2, y0 + 0.96 * h))):
            draw.text((x, y), text, fill=(255, 255, 255), font=font, anchor="mm",
                      stroke_width=1, stroke_fill=(0, 0, 0))
    if spacing_col_mm:
        bar = 20.0 / spacing_col_mm * sx  # 20 mm in output pixels
        bx, by = x0 + 0.62 * w, y0 + 0.92 * h
        draw.line((bx, by, bx + bar, by), fill=(255, 255, 255), width=3)
        draw.text((bx + bar / 2, by - 6), "20 mm", fill=(255, 255, 255), font=_font(14),
                  anchor="ms")
    canvas = Image.alpha_composite(canvas.convert("RGBA"), overlay).convert("RGB")
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
