"""Scanco ISQ and AIM files: header, voxel size, the header's density calibration, and the
voxel data read slice by slice (never the whole file at once).

Layout after KitwareMedical/ITKIOScanco (``src/itkScancoImageIO.cxx``; Apache-2.0), written
here from its description:

- ISQ: a 512-byte header of little-endian int32 fields: 'CTDATA-HEADER_V1' (16 bytes), data
  type, bytes, blocks, patient and scanner index, creation date (8 bytes), dimensions in
  voxels (x, y, z, at byte 44) and in um (x, y, z), slice thickness, increment, first slice
  position, min and max data value, mu scaling (byte 88), ...; the data offset in 512-byte
  blocks is the last int (byte 508): data start at (offset + 1) x 512. Data are int16, x
  fastest. An extended header with a 'Calibration' block carries the density slope and
  intercept and mu water as VAX G-float doubles (bytes 664, 672, 688 of that block).
- AIM (v020, 32-bit ints): a pre-header (its size, the struct's size, the processing log's
  size), a struct (20 bytes, data type, 21 ints: position, dimension, ..., 3 VAX F-floats:
  element size in mm), then the processing log, text lines of 'key  value' ('Mu_Scaling',
  'Density: slope', 'Density: intercept', 'HU: mu water'), then the data.

Density in mg HA/cm3 = mu x slope + intercept with mu = stored / mu_scaling (1/cm); for
example density = mu x 355.52 - 196.6 mg HA/ccm with mu scaling 4096 and mu water 0.514
(the header of ITKIOScanco's ``ITKIOScanco_UnitConversion.ipynb``). HU = 1000 (mu - mu water) /
mu water.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

from ..core.microct import DensityCalibration
from ..errors import CalibrationError, DecodeError, GeometryError

ISQ_MAGIC = b"CTDATA-HEADER_V1"
#: plausible header calibrations: mg HA/cm3 per 1/cm, and mu of water in 1/cm (at 20-100 kV
#: mu water is about 0.17-0.8 /cm)
SLOPE_RANGE = (10.0, 10000.0)
MU_WATER_RANGE = (0.05, 5.0)
AIM_TYPES: dict[int, np.dtype] = {0x00020002: np.dtype("<i2"), 0x00170002: np.dtype("<u2"),
             0x00160001: np.dtype("u1"), 0x00010001: np.dtype("i1"),
             0x00030004: np.dtype("<i4")}


def vax_float(b: bytes) -> float:
    """A VAX F-float (4 bytes): words swapped against IEEE, exponent bias 2 higher."""
    i = (b[0] << 16) | (b[1] << 24) | b[2] | (b[3] << 8)
    return 0.25 * struct.unpack("<f", struct.pack("<I", i))[0]


def vax_double(b: bytes) -> float:
    """A VAX G-float (8 bytes), as :func:`vax_float` per 32-bit half."""
    hi = (b[0] << 16) | (b[1] << 24) | b[2] | (b[3] << 8)
    lo = (b[4] << 16) | (b[5] << 24) | b[6] | (b[7] << 8)
    return 0.25 * struct.unpack("<d", struct.pack("<Q", (hi << 32) | lo))[0]


def to_vax_double(v: float) -> bytes:
    """The inverse of :func:`vax_double`."""
    q = struct.unpack("<Q", struct.pack("<d", 4.0 * v))[0]
    hi, lo = q >> 32, q & 0xFFFFFFFF
    return bytes([(hi >> 16) & 0xFF, (hi >> 24) & 0xFF, hi & 0xFF, (hi >> 8) & 0xFF,
                  (lo >> 16) & 0xFF, (lo >> 24) & 0xFF, lo & 0xFF, (lo >> 8) & 0xFF])


@dataclass(frozen=True, kw_only=True)
class ScancoHeader:
    """What vascalc takes from a Scanco header: shape (slice, row, col), voxel size in um
    (slice, row, col), the data's dtype and byte offset, and the calibration fields
    (None where the header has none)."""

    kind: str  # scanco_isq or scanco_aim
    shape: tuple[int, int, int]
    voxel_size_um: tuple[float, float, float]
    dtype: np.dtype
    data_offset: int
    mu_scaling: float | None
    density_slope: float | None  # mg HA/cm3 per 1/cm
    density_intercept: float | None
    mu_water: float | None
    density_unit: str = ""


def header_calibration(h: ScancoHeader, path: str) -> DensityCalibration:
    """The header's density calibration per stored value: slope / mu_scaling and intercept.
    Absent or implausible fields raise CalibrationError naming them."""
    missing = [n for n, v in (("mu scaling", h.mu_scaling), ("density slope", h.density_slope),
                              ("density intercept", h.density_intercept)) if v is None]
    if missing:
        raise CalibrationError(f"the {h.kind} header has no {', '.join(missing)}", path=path)
    assert h.mu_scaling is not None and h.density_slope is not None
    assert h.density_intercept is not None
    if not h.mu_scaling > 0:
        raise CalibrationError(f"the header's mu scaling {h.mu_scaling:g} is not positive",
                               path=path)
    if not SLOPE_RANGE[0] <= h.density_slope <= SLOPE_RANGE[1] or not np.isfinite(
            h.density_intercept) or abs(h.density_intercept) > 5000:
        raise CalibrationError(
            f"the header's density calibration (slope {h.density_slope:g}, intercept "
            f"{h.density_intercept:g} mg HA/cm3) is implausible: a slope of {SLOPE_RANGE[0]:g}-"
            f"{SLOPE_RANGE[1]:g} mg HA/cm3 per 1/cm and an intercept within +-5000 are allowed",
            path=path)
    if h.mu_water is not None and not MU_WATER_RANGE[0] <= h.mu_water <= MU_WATER_RANGE[1]:
        raise CalibrationError(f"the header's mu water {h.mu_water:g} /cm is outside "
                               f"{MU_WATER_RANGE[0]:g}-{MU_WATER_RANGE[1]:g} /cm", path=path)
    return DensityCalibration(slope=h.density_slope / h.mu_scaling,
                              intercept=h.density_intercept, source=f"header:{h.kind}")


def is_scanco(path: str | os.PathLike) -> bool:
    p = str(path)
    if not os.path.isfile(p):
        return False
    if p.lower().endswith(".aim") or ".aim;" in p.lower():
        return True
    with open(p, "rb") as f:
        return f.read(16) == ISQ_MAGIC


def read_scanco_header(path: str | os.PathLike) -> ScancoHeader:
    """The header of an ISQ or AIM file (see the module's docstring)."""
    p = str(path)
    size = os.path.getsize(p)
    with open(p, "rb") as f:
        head = f.read(512)
        if head[:16] == ISQ_MAGIC:
            h = _isq(f, head, p)
        else:
            h = _aim(f, head, p)
    need = h.data_offset + int(np.prod(h.shape)) * h.dtype.itemsize
    if size < need:
        raise DecodeError(f"the file holds {size} bytes; its header describes {need} "
                          f"({h.shape[2]} x {h.shape[1]} x {h.shape[0]} voxels of "
                          f"{h.dtype.itemsize} bytes): it is truncated",
                          path=p, hint="copy the file again from the scanner")
    return h


def _ints(b: bytes, n: int) -> tuple[int, ...]:
    return struct.unpack(f"<{n}i", b[:4 * n])


def _isq(f, head: bytes, path: str) -> ScancoHeader:
    if len(head) < 512:
        raise DecodeError("the ISQ header is shorter than 512 bytes", path=path)
    nx, ny, nz, ux, uy, uz = _ints(head[44:68], 6)
    if min(nx, ny, nz) < 1 or min(ux, uy, uz) < 1:
        raise GeometryError(f"the ISQ header gives {nx} x {ny} x {nz} voxels over {ux} x {uy} "
                            f"x {uz} um: not a 3-D stack with a voxel size", path=path)
    (mu_scaling,) = _ints(head[88:92], 1)
    (offset,) = _ints(head[508:512], 1)
    data_offset = (offset + 1) * 512
    slope = intercept = mu_water = None
    unit = ""
    if data_offset >= 2048:
        ext = f.read(data_offset - 512)
        slope, intercept, mu_water, unit = _isq_calibration(ext, data_offset)
    return ScancoHeader(kind="scanco_isq", shape=(nz, ny, nx),
                        voxel_size_um=(uz / nz, uy / ny, ux / nx), dtype=np.dtype("<i2"),
                        data_offset=data_offset, mu_scaling=float(mu_scaling) or None,
                        density_slope=slope, density_intercept=intercept, mu_water=mu_water,
                        density_unit=unit)


def _isq_calibration(ext: bytes, header_size: int):
    """The 'Calibration' block of an ISQ's extended header (after ITKIOScanco)."""
    h = 0
    skip = 1
    if ext[8:24] == b"MultiHeader     ":
        h += 512
        skip += 1
    for i in range(4):
        at = h + i * 128
        if at + 28 > len(ext):
            break
        (hsize,) = _ints(ext[at + 24:at + 28], 1)
        if (1 + skip + hsize) * 512 > header_size:
            break
        if ext[at + 8:at + 24] == b"Calibration     " and hsize * 512 >= 1024:
            cal = ext[skip * 512:]  # the block at (1 + skip) x 512 in the file
            unit = cal[648:664].split(b"\0")[0].decode("latin-1").strip()
            return vax_double(cal[664:672]), vax_double(cal[672:680]), vax_double(
                cal[688:696]), unit
        skip += hsize
    return None, None, None, ""


def _aim(f, head: bytes, path: str) -> ScancoHeader:
    if head[:16] == b"AIMDATA_V030   \0":
        raise DecodeError("AIM v030 (64-bit) files are not read yet", path=path,
                          hint="export the AIM as v020 or ISQ, or as a TIFF stack")
    if len(head) < 160:
        raise DecodeError("not a Scanco ISQ or AIM file (header too short)", path=path)
    pre, struct_size, log_size = _ints(head[:12], 3)
    if pre != 20 or struct_size != 140 or not 0 <= log_size < 10_000_000:
        raise DecodeError(f"not a Scanco AIM v020 file (pre-header {pre}, struct "
                          f"{struct_size}, log {log_size} bytes)", path=path)
    f.seek(0)
    raw = f.read(pre + struct_size + log_size)
    s = raw[pre:pre + struct_size]
    (dtype_code,) = _ints(s[20:24], 1)
    vals = _ints(s[24:108], 21)
    esize = [vax_float(s[108 + 4 * i:112 + 4 * i]) for i in range(3)]
    if dtype_code not in AIM_TYPES:
        raise DecodeError(f"AIM data type {dtype_code:#010x} is not read (compressed or not "
                          "a grey-value image)", path=path, hint="export an uncompressed AIM")
    nx, ny, nz = vals[3:6]
    if min(nx, ny, nz) < 1 or min(esize) <= 0:
        raise GeometryError(f"the AIM struct gives {nx} x {ny} x {nz} voxels of "
                            f"{esize} mm", path=path)
    log = _aim_log(raw[pre + struct_size:].decode("latin-1"))

    def num(key: str) -> float | None:
        try:
            return float(log[key].split()[0])
        except (KeyError, ValueError, IndexError):
            return None

    return ScancoHeader(kind="scanco_aim", shape=(nz, ny, nx),
                        voxel_size_um=(esize[2] * 1000, esize[1] * 1000, esize[0] * 1000),
                        dtype=AIM_TYPES[dtype_code], data_offset=len(raw),
                        mu_scaling=num("Mu_Scaling"), density_slope=num("Density: slope"),
                        density_intercept=num("Density: intercept"),
                        mu_water=num("HU: mu water"), density_unit=log.get("Density: unit", ""))


def _aim_log(text: str) -> dict[str, str]:
    """'key  value' lines of an AIM processing log (key and value split by 2+ spaces;
    '!' comments skipped)."""
    out = {}
    for line in text.replace("\0", "\n").splitlines():
        line = line.rstrip()
        if not line or line.startswith("!") or "  " not in line:
            continue
        key, _, value = line.partition("  ")
        out[key.strip()] = value.strip()
    return out


def read_slices(path: str, h: ScancoHeader, first: int, stop: int) -> np.ndarray:
    """Slices ``first`` to ``stop`` (exclusive) as (slice, row, col), read with one seek."""
    per = h.shape[1] * h.shape[2]
    with open(path, "rb") as f:
        f.seek(h.data_offset + first * per * h.dtype.itemsize)
        data = np.fromfile(f, dtype=h.dtype, count=(stop - first) * per)
    if data.size != (stop - first) * per:
        raise DecodeError(f"slices {first}-{stop - 1} are cut short", path=path)
    return data.reshape(stop - first, h.shape[1], h.shape[2]).astype(h.dtype.newbyteorder("="))
