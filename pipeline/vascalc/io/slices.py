"""Folders of 2-D slice images (TIFF, PNG, BMP), as Bruker NRecon and CTAn export them, and
the Bruker reconstruction log (``*_rec.log``) beside them.

A slice folder is read one file per slice, so any number of slices streams. Every slice is
checked at open time from its header alone (size and bit depth; a slice missing from the
numbering is named), so a stack that would fail half-way is refused before scoring.

The Bruker log is an INI-like text of ``key=value`` lines in sections; vascalc takes
``Pixel Size (um)`` (the reconstructed voxel, isotropic), ``Filename Prefix`` and
``Filename Index Length`` (slice file names are prefix + zero-padded index), ``Result File
Type``, ``Result Image Width/Height (pixels)``, ``First Section``/``Last Section`` (the slice
range), and ``Minimum/Maximum for CS to Image Conversion`` (the attenuation range NRecon mapped
to grey 0 to the top of the bit depth). The log records no HA density: a Bruker stack is
calibrated with HA rods (:mod:`vascalc.core.rods`), as CTAn does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DecodeError, StackError

SLICE_SUFFIXES = (".tif", ".tiff", ".png", ".bmp")
_INDEX = re.compile(r"^(.*?)(\d+)$")


@dataclass(frozen=True, kw_only=True)
class SliceFolder:
    """The slice files of a folder in order, their common size and dtype."""

    files: tuple[Path, ...]
    first_index: int
    shape: tuple[int, int]  # (row, col)
    dtype: np.dtype


def slice_header(path: Path) -> tuple[tuple[int, int], np.dtype]:
    """(rows, cols) and dtype of one slice image, from its header; refused when it is not a
    single-channel 8/16-bit (or 32-bit float TIFF) image."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile  # lazy: micro-CT input only

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                shape, dtype = tuple(page.shape), np.dtype(page.dtype)
                if len(tif.pages) != 1:
                    raise StackError(f"a slice file holds {len(tif.pages)} images",
                                     path=str(path), hint="give a multi-page TIFF as one file")
        else:
            from PIL import Image  # lazy: micro-CT slices only

            with Image.open(path) as im:
                modes = {"L": "u1", "I;16": "<u2", "I;16B": ">u2", "I;16L": "<u2"}
                if im.mode not in modes:
                    raise StackError(f"slice image mode {im.mode!r} is not 8- or 16-bit grey",
                                     path=str(path), hint="export grey-value slices")
                shape, dtype = (im.size[1], im.size[0]), np.dtype(modes[im.mode])
    except StackError:
        raise
    except Exception as err:  # noqa: BLE001 - PIL and tifffile raise many kinds
        raise DecodeError(f"not a readable slice image ({type(err).__name__}: {err})",
                          path=str(path)) from None
    if len(shape) != 2 or dtype.kind not in "uif" or (dtype.kind != "f" and dtype.itemsize > 2):
        raise StackError(f"slice of shape {shape} and type {dtype} is not one 8- or 16-bit "
                         "grey image", path=str(path), hint="export grey-value slices")
    return shape, dtype


def read_slice(path: Path) -> np.ndarray:
    """The pixel values of one slice (rows, cols), in the file's own bit depth."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile  # lazy: micro-CT input only

            return np.asarray(tifffile.imread(path))
        from PIL import Image  # lazy: micro-CT slices only

        with Image.open(path) as im:
            return np.asarray(im)
    except Exception as err:  # noqa: BLE001
        raise DecodeError(f"cannot read the slice ({type(err).__name__}: {err})",
                          path=str(path)) from None


def index_slices(files: list[Path], folder: Path, *, prefix: str | None = None,
                 index_length: int | None = None) -> SliceFolder:
    """Order slice files by the number ending their name and check the stack: one prefix and
    extension, consecutive numbers (a missing one is named), one size and one bit depth."""
    by_index: dict[int, Path] = {}
    stems = set()
    for f in files:
        m = _INDEX.match(f.stem)
        if m is None or (prefix is not None and m.group(1) != prefix):
            continue
        if index_length is not None and len(m.group(2)) != index_length:
            continue
        stems.add((m.group(1), f.suffix.lower()))
        by_index[int(m.group(2))] = f
    if not by_index:
        raise StackError("no numbered slice images (name ending in its slice number, .tif, "
                         ".png or .bmp)", path=str(folder))
    if len(stems) > 1:
        raise StackError(f"slices of {len(stems)} different names or types: "
                         f"{sorted(stems)[:3]}", path=str(folder),
                         hint="keep one reconstruction per folder")
    idx = sorted(by_index)
    gaps = sorted(set(range(idx[0], idx[-1] + 1)) - set(idx))
    if gaps:
        name, ext = next(iter(stems))
        width = len(_INDEX.match(by_index[idx[0]].stem).group(2))  # type: ignore[union-attr]
        raise StackError(f"{len(gaps)} slice(s) missing from {idx[0]}-{idx[-1]}, first "
                         f"{name}{gaps[0]:0{width}d}{ext}", path=str(folder))
    ordered = tuple(by_index[i] for i in idx)
    shape, dtype = slice_header(ordered[0])
    for f in ordered[1:]:
        s, d = slice_header(f)
        if d != dtype:
            raise StackError(f"mixed bit depths: {f.name} is {d}, {ordered[0].name} is "
                             f"{dtype}", path=str(folder))
        if s != shape:
            raise StackError(f"mixed sizes: {f.name} is {s[1]} x {s[0]} px, "
                             f"{ordered[0].name} is {shape[1]} x {shape[0]}", path=str(folder))
    return SliceFolder(files=ordered, first_index=idx[0], shape=shape, dtype=dtype)


def read_rec_log(path: Path) -> dict[str, str]:
    """The ``key=value`` lines of a Bruker reconstruction log (section names dropped; a key
    repeated in a later section wins)."""
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as err:
        raise StackError(f"cannot read the reconstruction log ({err})", path=str(path)) from None
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("["):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def _float(log: dict[str, str], key: str, path: Path) -> float | None:
    if key not in log:
        return None
    try:
        return float(log[key])
    except ValueError:
        raise StackError(f"{key}={log[key]!r} is not a number", path=str(path)) from None


@dataclass(frozen=True, kw_only=True)
class BrukerLog:
    """What the log says: pixel size (um), the slice name, and the attenuation range."""

    pixel_size_um: float
    prefix: str | None
    index_length: int | None
    attenuation_range: tuple[float, float] | None


def check_bruker(log_path: Path, folder: SliceFolder | None = None) -> BrukerLog:
    """The log's facts, checked against the slices: file type, width and height, and the
    number of sections (a log that does not match its slices is refused by name)."""
    log = read_rec_log(log_path)
    px = _float(log, "Pixel Size (um)", log_path)
    if px is None or not 0.05 <= px <= 1000:
        raise StackError(f"no plausible 'Pixel Size (um)' in the log (got {px})",
                         path=str(log_path), hint="give the reconstruction's own _rec.log")
    lo = _float(log, "Minimum for CS to Image Conversion", log_path)
    hi = _float(log, "Maximum for CS to Image Conversion", log_path)
    n_len = log.get("Filename Index Length")
    out = BrukerLog(pixel_size_um=px, prefix=log.get("Filename Prefix"),
                    index_length=int(n_len) if n_len and n_len.isdigit() else None,
                    attenuation_range=(lo, hi) if lo is not None and hi is not None else None)
    if folder is None:
        return out
    ftype = log.get("Result File Type", "").lower()
    if ftype and folder.files[0].suffix.lower().lstrip(".") not in (
            ftype, {"tif": "tiff", "tiff": "tif"}.get(ftype, ftype)):
        raise StackError(f"the log says slices are {ftype.upper()}, the folder holds "
                         f"{folder.files[0].suffix}", path=str(log_path))
    for key, got in (("Result Image Width (pixels)", folder.shape[1]),
                     ("Result Image Height (pixels)", folder.shape[0])):
        want = _float(log, key, log_path)
        if want is not None and int(want) != got:
            raise StackError(f"the log's {key} is {int(want)}, the slices have {got}",
                             path=str(log_path), hint="the log belongs to another reconstruction")
    first, last = _float(log, "First Section", log_path), _float(log, "Last Section", log_path)
    if first is not None and last is not None:
        want_n = int(last) - int(first) + 1
        if want_n != len(folder.files) or int(first) != folder.first_index:
            raise StackError(f"the log's sections {int(first)}-{int(last)} ({want_n} slices) "
                             f"do not match the folder's {folder.first_index}-"
                             f"{folder.first_index + len(folder.files) - 1} "
                             f"({len(folder.files)} slices)", path=str(log_path))
    return out
