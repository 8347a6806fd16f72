"""The registry of micro-CT input kinds and the stack record they open, read in slabs.

Kinds (:data:`MICROCT_INPUTS`, first match wins):

- ``bruker``: a folder with one ``*_rec.log`` and its numbered slices (NRecon: BMP, TIFF or
  PNG, 8 or 16 bits); voxel size from the log (:mod:`vascalc.io.slices`);
- ``scanco_isq``/``scanco_aim``: a Scanco file; voxel size and density calibration from its
  header (:mod:`vascalc.io.scanco`);
- ``tiff_stack``: one multi-page TIFF; voxel size from its ImageJ metadata (``spacing`` and
  the X/Y resolution in um or mm) or the manifest column ``voxel_size_um``;
- ``tiff_slices``: a folder of numbered TIFF/PNG/BMP slices without a log; voxel size from
  the manifest column ``voxel_size_um``;
- ``nrrd``/``mha``: NRRD or MetaImage (3D Slicer), read with SimpleITK (spacing in mm).

A file's own voxel size and the manifest's must agree within 1 % when both are given. The
stack is never held whole except for NRRD/MHA (SimpleITK reads the whole image): every other
kind reads ``read(first, stop)`` slices at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.microct import DensityCalibration
from ..errors import CalibrationError, GeometryError, InputError, StackError
from .scanco import header_calibration, is_scanco, read_scanco_header, read_slices
from .slices import SLICE_SUFFIXES, check_bruker, index_slices, read_slice

TIFF_SUFFIXES = (".tif", ".tiff")
SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass(frozen=True, eq=False, kw_only=True)
class MicroCTStack:
    """A micro-CT stack opened for reading in slabs (nothing read yet but headers).

    Attributes
    ----------
    path : str
        What the user gave (a folder or a file).
    format : str
        The kind that opened it (:data:`MICROCT_INPUTS`).
    shape : (int, int, int)
        Voxels (slice, row, col).
    dtype : numpy.dtype
        Stored values.
    voxel_size_um : (float, float, float)
        Voxel size in micrometres (slice, row, col).
    voxel_size_source : str
        ``rec_log``, ``header``, ``tiff_metadata`` or ``manifest``.
    header_calibration : DensityCalibration or None
        The density calibration the file's header carries (Scanco), else None.
    notes : tuple of str
        Facts for the row (e.g. the attenuation range of a Bruker log).
    """

    path: str
    format: str
    shape: tuple[int, int, int]
    dtype: np.dtype
    voxel_size_um: tuple[float, float, float]
    voxel_size_source: str
    header_calibration: DensityCalibration | None
    notes: tuple[str, ...]
    reader: Callable[[int, int], np.ndarray]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return tuple(v / 1000.0 for v in self.voxel_size_um)  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def read(self, first: int, stop: int) -> np.ndarray:
        """Slices ``first`` to ``stop`` (exclusive) as (slice, row, col)."""
        first, stop = max(0, first), min(self.shape[0], stop)
        return self.reader(first, stop)

    def slabs(self, n: int) -> Iterator[tuple[int, np.ndarray]]:
        """Consecutive slabs of ``n`` slices."""
        for z in range(0, self.shape[0], max(1, n)):
            yield z, self.read(z, z + n)


def _check_um(size: tuple[float, float, float], path: str) -> tuple[float, float, float]:
    if not all(np.isfinite(size)) or min(size) < 0.05 or max(size) > 1000:
        raise GeometryError(f"voxel size {size} um is outside 0.05-1000 um (micro-CT)",
                            path=path, hint="give voxel_size_um in micrometres")
    return size


def _voxel(own: tuple[float, float, float] | None, own_source: str,
           manifest_um: float | None, path: str) -> tuple[tuple[float, float, float], str]:
    """The voxel size: the file's own, or the manifest's; both given must agree within 1 %."""
    if own is not None and manifest_um is not None:
        if max(abs(o - manifest_um) / manifest_um for o in own) > 0.01:
            raise GeometryError(f"the file says voxels of {tuple(round(o, 4) for o in own)} um, "
                                f"the manifest's voxel_size_um says {manifest_um:g}",
                                path=path, hint="correct the manifest or the export")
    if own is not None:
        return _check_um(own, path), own_source
    if manifest_um is None:
        raise GeometryError("no voxel size: the file records none", path=path,
                            hint="add the manifest column voxel_size_um (micrometres)")
    return _check_um((manifest_um, manifest_um, manifest_um), path), "manifest"


def _bruker_log(p: Path) -> Path | None:
    logs = sorted(p.glob("*_rec.log")) + sorted(p.glob("*_rec.LOG"))
    if len(logs) > 1:
        raise StackError(f"{len(logs)} reconstruction logs in one folder", path=str(p),
                         hint="keep one reconstruction per folder")
    return logs[0] if logs else None


def _slice_files(p: Path) -> list[Path]:
    return [f for f in sorted(p.iterdir()) if f.is_file() and f.suffix.lower() in SLICE_SUFFIXES
            and not f.name.startswith(".")]


_SIDE_FILES = (".txt", ".csv", ".json", ".yaml", ".yml", ".log", ".md", ".ini")


def _is_slice_folder(p: Path) -> bool:
    """A folder of numbered slices and nothing else but notes: a DICOM folder with a stray
    screenshot is not a micro-CT stack."""
    if not p.is_dir():
        return False
    files = [f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")]
    return bool(files) and all(f.suffix.lower() in SLICE_SUFFIXES + _SIDE_FILES for f in files) \
        and any(f.suffix.lower() in SLICE_SUFFIXES for f in files)


def open_bruker(p: Path, manifest_um: float | None) -> MicroCTStack:
    log_path = _bruker_log(p)
    assert log_path is not None
    head = check_bruker(log_path)
    folder = index_slices(_slice_files(p), p, prefix=head.prefix, index_length=head.index_length)
    log = check_bruker(log_path, folder)
    size, source = _voxel((log.pixel_size_um,) * 3, "rec_log", manifest_um, str(p))
    notes = () if log.attenuation_range is None else (
        f"attenuation {log.attenuation_range[0]:g}-{log.attenuation_range[1]:g} mapped to grey "
        f"0-{np.iinfo(folder.dtype).max if folder.dtype.kind in 'iu' else 1}",)
    return _folder_stack(p, folder, "bruker", size, source, notes)


def open_slice_folder(p: Path, manifest_um: float | None) -> MicroCTStack:
    folder = index_slices(_slice_files(p), p)
    size, source = _voxel(None, "", manifest_um, str(p))
    return _folder_stack(p, folder, "tiff_slices", size, source, ())


def _folder_stack(p, folder, fmt, size, source, notes) -> MicroCTStack:
    files = folder.files

    def read(first: int, stop: int) -> np.ndarray:
        out = np.empty((stop - first, *folder.shape), dtype=folder.dtype)
        for i, f in enumerate(files[first:stop]):
            a = read_slice(f)
            if a.shape != folder.shape or a.dtype != folder.dtype:
                raise StackError(f"slice {f.name} reads as {a.shape} {a.dtype}, the stack is "
                                 f"{folder.shape} {folder.dtype}", path=str(p))
            out[i] = a
        return out

    return MicroCTStack(path=str(p), format=fmt, shape=(len(files), *folder.shape),
                        dtype=folder.dtype, voxel_size_um=size, voxel_size_source=source,
                        header_calibration=None, notes=notes, reader=read)


def open_scanco(p: Path, manifest_um: float | None) -> MicroCTStack:
    h = read_scanco_header(p)
    size, source = _voxel(h.voxel_size_um, "header", manifest_um, str(p))
    try:
        cal: DensityCalibration | None = header_calibration(h, str(p))
        notes: tuple[str, ...] = (f"mu scaling {h.mu_scaling:g}, mu water {h.mu_water}",)
    except CalibrationError as err:
        if h.density_slope is not None:  # present but implausible: refused by name
            raise
        cal, notes = None, (f"no header calibration ({err})",)
    return MicroCTStack(path=str(p), format=h.kind, shape=h.shape, dtype=h.dtype,
                        voxel_size_um=size, voxel_size_source=source, header_calibration=cal,
                        notes=notes, reader=lambda a, b: read_slices(str(p), h, a, b))


def tiff_voxel_um(tif) -> tuple[float, float, float] | None:
    """(slice, row, col) um from ImageJ metadata ('spacing', 'unit') and the X/Y resolution
    tags (pixels per unit), or None when the file records no physical unit."""
    ij = tif.imagej_metadata or {}
    unit = str(ij.get("unit", "")).replace("\\u00B5", "u").replace("µ", "u").lower()
    scale = {"micron": 1.0, "um": 1.0, "microns": 1.0, "mm": 1000.0, "nm": 0.001}.get(unit)
    page = tif.pages[0]
    xr, yr = page.tags.get("XResolution"), page.tags.get("YResolution")
    if scale is None or xr is None or yr is None or "spacing" not in ij:
        return None
    px = [v[1] / v[0] * scale for v in (yr.value, xr.value) if v[0] > 0]
    if len(px) != 2:
        return None
    return (float(ij["spacing"]) * scale, px[0], px[1])


def open_tiff_stack(p: Path, manifest_um: float | None) -> MicroCTStack:
    import tifffile  # lazy: micro-CT input only

    with tifffile.TiffFile(p) as tif:
        pages = len(tif.pages)
        page = tif.pages[0]
        shape2, dtype = tuple(page.shape), np.dtype(page.dtype)
        own = tiff_voxel_um(tif)
        for i in range(1, pages):
            pg = tif.pages[i]
            if tuple(pg.shape) != shape2 or np.dtype(pg.dtype) != dtype:
                raise StackError(f"page {i} is {pg.shape} {pg.dtype}, page 0 is {shape2} "
                                 f"{dtype} (mixed sizes or bit depths)", path=str(p))
    if len(shape2) != 2 or pages < 2:
        raise StackError(f"a TIFF stack needs two or more single-channel pages, got {pages} of "
                         f"shape {shape2}", path=str(p))
    size, source = _voxel(own, "tiff_metadata", manifest_um, str(p))

    def read(first: int, stop: int) -> np.ndarray:
        with tifffile.TiffFile(p) as tif:
            return np.stack([tif.pages[i].asarray() for i in range(first, stop)])

    return MicroCTStack(path=str(p), format="tiff_stack", shape=(pages, *shape2),
                        dtype=dtype, voxel_size_um=size, voxel_size_source=source,
                        header_calibration=None, notes=(), reader=read)


def open_sitk(p: Path, manifest_um: float | None) -> MicroCTStack:
    import SimpleITK as sitk  # lazy

    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as err:
        raise InputError(f"SimpleITK cannot read it ({str(err).strip().splitlines()[-1]})",
                         path=str(p)) from None
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise StackError(f"a {img.GetDimension()}-D image of {img.GetNumberOfComponentsPerPixel()}"
                         " component(s) is not one 3-D grey volume", path=str(p))
    arr = sitk.GetArrayViewFromImage(img).copy()  # (z, y, x)
    sx, sy, sz = img.GetSpacing()
    size, source = _voxel((sz * 1000, sy * 1000, sx * 1000), "header", manifest_um, str(p))
    arr.flags.writeable = False
    fmt = "nrrd" if p.suffix.lower() in (".nrrd", ".nhdr") else "mha"
    return MicroCTStack(path=str(p), format=fmt, shape=arr.shape, dtype=arr.dtype,
                        voxel_size_um=size, voxel_size_source=source, header_calibration=None,
                        notes=("read whole (SimpleITK)",), reader=lambda a, b: arr[a:b])


@dataclass(frozen=True)
class MicroCTKind:
    """One micro-CT input kind: its name, what it is, how it is recognised, its opener."""

    name: str
    description: str
    matches: Callable[[Path], bool]
    open: Callable[[Path, float | None], MicroCTStack]


MICROCT_INPUTS: tuple[MicroCTKind, ...] = (
    MicroCTKind("bruker", "Bruker SkyScan/NRecon folder: numbered BMP/TIFF/PNG slices (8 or "
                "16 bit) with their *_rec.log", lambda p: p.is_dir() and _bruker_log(p) is not None,
                open_bruker),
    MicroCTKind("scanco", "Scanco ISQ or AIM (v020) file, calibration from its header",
                lambda p: p.is_file() and is_scanco(p), open_scanco),
    MicroCTKind("tiff_stack", "multi-page TIFF (voxel size from ImageJ metadata or the "
                "manifest's voxel_size_um)",
                lambda p: p.is_file() and p.suffix.lower() in TIFF_SUFFIXES, open_tiff_stack),
    MicroCTKind("tiff_slices", "folder of numbered TIFF/PNG/BMP slices without a log (voxel "
                "size from the manifest's voxel_size_um)",
                _is_slice_folder, open_slice_folder),
    MicroCTKind("nrrd", "NRRD or MetaImage (.nrrd, .nhdr, .mha, .mhd; 3D Slicer), read whole",
                lambda p: p.is_file() and p.suffix.lower() in SITK_SUFFIXES, open_sitk),
)


def microct_kind(path: str | os.PathLike) -> MicroCTKind | None:
    """The first kind that matches ``path``, or None (not a micro-CT input)."""
    p = Path(path)
    return next((k for k in MICROCT_INPUTS if k.matches(p)), None)


def open_microct(path: str | os.PathLike, *, voxel_size_um: float | None = None,
                 display_path: str | None = None) -> MicroCTStack:
    """Open the micro-CT stack at ``path`` (headers only) by the first matching kind."""
    p = Path(path)
    shown = display_path or str(path)
    if not p.exists():
        raise InputError(f"input path {shown!r} does not exist",
                         hint="fix the path in the manifest (relative to its folder)")
    kind = microct_kind(p)
    if kind is None:
        raise InputError(f"{shown!r} is not a micro-CT input ("
                         + "; ".join(k.description for k in MICROCT_INPUTS) + ")")
    return kind.open(p, voxel_size_um)
