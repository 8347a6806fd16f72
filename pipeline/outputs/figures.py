"""Cohort figures as PNG (matplotlib, Agg backend; imported only when figures are asked for)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..progression import _date, _num


def _plt():
    import matplotlib  # lazy: matplotlib, for figures only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib, for figures only

    return plt


def agatston_distribution(rows: list[dict[str, Any]], path: Path) -> Path:
    plt = _plt()
    vals = [math.log(a + 1) for a in (_num(r.get("agatston")) for r in rows
                                      if r.get("status") == "ok") if a is not None]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.hist(vals, bins=max(5, min(40, len(vals))), color="#5b7fa6", edgecolor="white")
    ax.set_xlabel("log(Agatston + 1)")
    ax.set_ylabel("scans")
    ax.set_title(f"Agatston score distribution (n = {len(vals)})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def calc_bsa_by_group(rows: list[dict[str, Any]], group: str | None, path: Path) -> Path:
    plt = _plt()
    groups: dict[str, list[float]] = {}
    for r in rows:
        v = _num(r.get("volume_per_bsa_mm3_m2"))
        if r.get("status") == "ok" and v is not None:
            groups.setdefault(str(r.get(group, "")) if group else "all", []).append(v)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    names = sorted(groups)
    if names:
        ax.boxplot([groups[n] for n in names], tick_labels=names)
        for i, n in enumerate(names, start=1):
            ax.scatter([i] * len(groups[n]), groups[n], s=12, color="#c0504d", zorder=3)
    ax.set_ylabel("Calc/BSA (mm3/m2)")
    ax.set_xlabel(group or "")
    ax.set_title("Calcium volume / body surface area")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def progression_per_patient(rows: list[dict[str, Any]], path: Path) -> Path:
    plt = _plt()
    by_patient: dict[str, list] = {}
    for r in rows:
        d, v = _date(r), _num(r.get("volume_mm3"))
        if r.get("status") == "ok" and r.get("patient_id") and d and v is not None:
            by_patient.setdefault(r["patient_id"], []).append((d, v))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for pid, pts in sorted(by_patient.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=pid)
    ax.set_ylabel("calcium volume (mm3)")
    ax.set_title("Calcium volume per patient over time")
    if 0 < len(by_patient) <= 12:
        ax.legend(fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --- per-case key images ----------------------------------------------------------------

BAND_COLOURS = ("#ffd700", "#ff8c00", "#e8112d", "#c71585")  # weight 1, 2, 3, 4
SOFT_TISSUE_WINDOW = (-160.0, 240.0)  # width 400, level 40 HU


def _png(fig) -> bytes:

    buf = io.BytesIO()
    fig.savefig(buf, format="png", pil_kwargs={"compress_level": 1})  # 2x faster than 6
    _plt().close(fig)
    return buf.getvalue()


#: territory colours: vascular and coronary territories take these in turn; bone, other
#: structures and calcium in no region are drawn in muted colours (not vascular)
TERRITORY_COLOURS = ("#e8112d", "#ff8c00", "#ffd700", "#c71585", "#00c8ff", "#7cfc00",
                     "#ff69b4", "#1e90ff")
APART_COLOURS = {"bone": "#d9d9d9", "other": "#6b8e23", "outside": "#8a6bbf"}


@dataclass(frozen=True)
class Colouring:
    """How kept voxels are coloured: ``index`` (same shape as the image, 0 = none) into
    ``colours``, with ``legend`` (label, colour) pairs."""

    colours: tuple[str, ...]
    legend: tuple[tuple[str, str], ...]


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


def _overlay(ax, img, index, aspect: float, colouring: Colouring | None = None) -> None:
    """The image in the soft-tissue window, kept voxels coloured: by density band (index =
    band 1-4) or, with ``colouring``, by territory (index = region label + 1)."""
    from matplotlib.colors import ListedColormap  # lazy: matplotlib, for figures only
    from matplotlib.patches import Patch  # lazy: matplotlib, for figures only

    ax.imshow(np.clip(img, *SOFT_TISSUE_WINDOW), cmap="gray", aspect=aspect,
              vmin=SOFT_TISSUE_WINDOW[0], vmax=SOFT_TISSUE_WINDOW[1], interpolation="nearest")
    colours = BAND_COLOURS if colouring is None else colouring.colours
    ax.imshow(np.ma.masked_equal(index, 0), cmap=ListedColormap(colours), vmin=0.5,
              vmax=len(colours) + 0.5, aspect=aspect, interpolation="nearest", alpha=0.85)
    if colouring is not None and colouring.legend:
        ax.legend(handles=[Patch(color=c, label=n) for n, c in colouring.legend],
                  loc="lower left", fontsize=6, framealpha=0.7)
    ax.set_xticks([])
    ax.set_yticks([])


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


def _annotate(ax, shape, spacing_row: float, spacing_col: float, row_dir, col_dir) -> None:
    """Orientation letters on the four edges and a 20 mm scale bar."""
    n_rows, n_cols = shape
    style = dict(color="white", fontsize=10, fontweight="bold", ha="center", va="center")
    flip = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}
    right, down = _letters(col_dir), _letters(row_dir)
    ax.text(n_cols * 0.03, n_rows / 2, flip[right], **style)
    ax.text(n_cols * 0.97, n_rows / 2, right, **style)
    ax.text(n_cols / 2, n_rows * 0.04, flip[down], **style)
    ax.text(n_cols / 2, n_rows * 0.96, down, **style)
    bar = 20.0 / spacing_col  # 20 mm in columns
    x0, y0 = n_cols * 0.62, n_rows * 0.92
    ax.plot([x0, x0 + bar], [y0, y0], color="white", linewidth=3)
    ax.text(x0 + bar / 2, y0 - n_rows * 0.035, "20 mm", color="white", fontsize=8, ha="center")


def key_images(hu, bands, slices: list[tuple[int, str, list]], spacing_mm, *, regions=None,
               colouring: Colouring | None = None, direction=None) -> list[tuple[str, bytes]]:
    """Axial slices (soft-tissue window, 600 px) with calcium coloured by density band, or by
    territory when ``regions`` and its ``colouring`` are given; each lesion of ``slices``'
    markers ((row, col, radius) in pixels) circled, orientation letters and a scale bar."""
    from matplotlib.patches import Circle  # lazy: matplotlib, for figures only

    plt = _plt()
    d = np.asarray(direction if direction is not None else np.eye(3), dtype=float)
    out = []
    for k, title, markers in slices:
        fig, ax = _image_figure(plt)
        _overlay(ax, hu[k].astype(float), _index(bands[k], None if regions is None
                                                 else regions[k]),
                 aspect=spacing_mm[1] / spacing_mm[2], colouring=colouring)
        for r, c, radius in markers:
            ax.add_patch(Circle((c, r), radius, fill=False, color="#00ff66", linewidth=1.5))
        _annotate(ax, hu.shape[1:], spacing_mm[1], spacing_mm[2], d[:, 1], d[:, 2])
        ax.set_title(title, fontsize=10)
        out.append((title, _png(fig)))
    return out


def mip_image(hu, bands, spacing_mm, *, regions=None, colouring: Colouring | None = None) -> bytes:
    """Coronal maximum intensity projection (along the rows): the densest band, or the region
    of the densest kept voxel along each ray."""
    plt = _plt()
    mip = hu.max(axis=1).astype(float)
    if regions is None:
        index = bands.max(axis=1)
    else:
        kept_hu = np.where(bands > 0, hu, np.iinfo(np.int16).min).astype(np.float32)
        ray = kept_hu.argmax(axis=1)[:, None, :]
        index = np.where(bands.max(axis=1) > 0,
                         np.take_along_axis(regions, ray, axis=1)[:, 0, :].astype(np.int32) + 1, 0)
    fig, ax = _image_figure(plt)
    _overlay(ax, mip, index, aspect=spacing_mm[0] / spacing_mm[2], colouring=colouring)
    ax.set_title("maximum intensity projection", fontsize=9)
    return _png(fig)


def _image_figure(plt):
    """A 600 x 600 px figure with one image axes placed by hand: ``tight_layout`` would draw
    the whole figure once more only to measure it."""
    fig = plt.figure(figsize=(6, 6), dpi=100)
    return fig, fig.add_axes((0.01, 0.01, 0.98, 0.935))
