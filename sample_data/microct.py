"""Micro-CT phantoms with known truth, written in each scanner's format.

    python -m sample_data.microct --out sample_data/microct

A mouse-aorta-like phantom: a vessel tube along the slices (wall below threshold), medial
calcification as partial rings in the wall and intimal plaques as balls inside it, each at a
known HA density, and two HA rods (250 and 750 mg HA/cm3) beside the vessel. The simulated
scanner maps density linearly to stored values (density = slope x value + intercept), so every
object's stored value is exact and the truth is computed from the design, not measured:
volume = calcified voxels x voxel volume, mass = sum(density x voxel volume). Seeded and
deterministic. Writers: Bruker (slices + _rec.log), Scanco ISQ and AIM (v020), a multi-page
TIFF with ImageJ voxel metadata, a TIFF slice folder, NRRD, and a VOI label map.
"""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path

import numpy as np

#: the simulated scanner: density (mg HA/cm3) = SLOPE x stored + INTERCEPT
SLOPE = 0.5
INTERCEPT = -200.0
RODS = (("rod_250", 250.0), ("rod_750", 750.0))
THRESHOLD = 100.0  # mg HA/cm3, the microct default


def stored(density: float) -> int:
    return int(round((density - INTERCEPT) / SLOPE))


def phantom(shape=(40, 64, 64), *, seed: int = 7, plaques: int = 4, rods: bool = True):
    """(stored int16 volume, VOI labels uint8, truth) of the phantom. VOI label 1 = 'aorta'
    (the vessel), 2 = 'rods'. Plaque densities 300-900 mg HA/cm3 (one beyond the densest
    rod, 900 > 750, to exercise the flag)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    vol = np.full(shape, stored(-20.0), dtype=np.int16)  # tissue, below threshold
    voi = np.zeros(shape, dtype=np.uint8)
    z, y, x = np.indices(shape)
    cy, cx, r_in, r_out = ny // 2, nx // 3, 7.0, 10.0
    rad = np.hypot(y - cy, x - cx)
    wall = (rad >= r_in) & (rad < r_out)
    vol[wall] = stored(40.0)
    voi[rad < r_out + 2] = 1
    dens = {}
    # medial rings: a quarter ring in the wall over a range of slices, one density each
    for k, (z0, z1, d) in enumerate(((3, 9, 400.0), (15, 22, 600.0), (28, 31, 350.0))):
        ang = np.arctan2(y - cy, x - cx)
        ring = wall & (z >= z0) & (z < z1) & (ang >= k * 1.2 - 0.6) & (ang < k * 1.2 + 0.6)
        vol[ring] = stored(d)
        dens[f"medial_{k}"] = d
    for k in range(plaques):
        d = (300.0, 500.0, 700.0, 900.0)[k % 4]
        pz = int(rng.integers(4, nz - 4))
        ang = rng.uniform(0, 2 * np.pi)
        py, px = cy + (r_in - 1) * np.sin(ang), cx + (r_in - 1) * np.cos(ang)
        ball = (z - pz) ** 2 + (y - py) ** 2 + (x - px) ** 2 <= 2.2 ** 2
        vol[ball] = stored(d)
        dens[f"intimal_{k}"] = d
    rx = 2 * nx // 3 + 6
    for k, (_name, d) in enumerate(RODS if rods else ()):
        rod = np.hypot(y - (ny // 3 + k * ny // 3), x - rx) <= 4.0
        vol[rod] = stored(d)
        voi[rod] = 2
    density = SLOPE * vol.astype(np.float64) + INTERCEPT
    calc = density >= THRESHOLD
    return vol, voi, {"n_voxels": int(calc.sum()), "sum_density": float(density[calc].sum()),
                      "objects": dens, "beyond_750_voxels": int((density[calc] > 750).sum()),
                      "slope": SLOPE, "intercept": INTERCEPT, "threshold": THRESHOLD}


#: the 8-bit Bruker scanner: density = 10 x grey - 200 (every phantom density is a whole grey)
BRUKER_SLOPE, BRUKER_INTERCEPT = 10.0, -200.0


def bruker_grey(vol: np.ndarray) -> np.ndarray:
    """The phantom's densities as 8-bit grey values of the simulated Bruker scanner."""
    density = SLOPE * vol.astype(np.float64) + INTERCEPT
    g = (density - BRUKER_INTERCEPT) / BRUKER_SLOPE
    assert np.all(g == np.round(g)) and g.min() >= 0 and g.max() <= 255
    return g.astype(np.uint8)


#: the Scanco header calibration the ISQ/AIM writers use (ITKIOScanco's published example)
SCANCO_SLOPE, SCANCO_INTERCEPT, SCANCO_MU_SCALING = 355.52, -196.6, 4096


def scanco_stored(vol: np.ndarray) -> tuple[np.ndarray, dict]:
    """The phantom's densities as Scanco stored values (mu x 4096, rounded to integers) and the
    truth of those values under the header calibration (n voxels, sum of density)."""
    density = SLOPE * vol.astype(np.float64) + INTERCEPT
    v = np.round((density - SCANCO_INTERCEPT) * SCANCO_MU_SCALING / SCANCO_SLOPE).astype(np.int16)
    d = v.astype(np.float64) * SCANCO_SLOPE / SCANCO_MU_SCALING + SCANCO_INTERCEPT
    calc = d >= THRESHOLD
    return v, {"n_voxels": int(calc.sum()), "sum_density": float(d[calc].sum())}


def truth_for(truth: dict, voxel_um: float) -> dict:
    vv = (voxel_um / 1000.0) ** 3
    return {**truth, "voxel_size_um": voxel_um, "volume_mm3": truth["n_voxels"] * vv,
            "mass_mg": truth["sum_density"] * vv / 1000.0}


def rods_yaml(shape, voxel_um: float) -> str:
    """The rods as --inserts YAML: centres in mm from the first voxel (x = col, y = row,
    z = slice)."""
    nz, ny, nx = shape
    mm = voxel_um / 1000.0
    rx = 2 * nx // 3 + 6
    out = []
    for k, (name, d) in enumerate(RODS):
        ry = ny // 3 + k * ny // 3
        out.append(f"- name: {name}\n  density_mg_per_cm3: {d}\n  center_mm: [{rx * mm:.6f}, "
                   f"{ry * mm:.6f}, {nz // 2 * mm:.6f}]\n  radius_mm: {3 * mm:.6f}\n")
    return "".join(out)


def write_bruker(folder: Path, vol: np.ndarray, voxel_um: float, *, ext: str = "bmp",
                 prefix: str = "mouse_rec", first: int = 0) -> Path:
    """NRecon-like output: 8-bit slices (BMP/PNG/TIFF) named prefix + 8-digit index, and the
    _rec.log. Values must fit 0-255 (8 bits) or 0-65535 (16 bits, PNG/TIFF)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    bits8 = ext == "bmp" or (vol.min() >= 0 and vol.max() <= 255)
    data = vol.astype(np.uint8 if bits8 else np.uint16)
    for i, sl in enumerate(data):
        name = folder / f"{prefix}{first + i:08d}.{ext}"
        if ext in ("tif", "tiff"):
            import tifffile

            tifffile.imwrite(name, sl)
        else:
            Image.fromarray(sl).save(name)
    log = (f"[System]\nScanner=SkyScan1272 (simulated)\n[Reconstruction]\n"
           f"Reconstruction Program=NRecon\nFirst Section={first}\n"
           f"Last Section={first + len(data) - 1}\nResult File Type={ext.upper()}\n"
           f"Result Image Width (pixels)={data.shape[2]}\n"
           f"Result Image Height (pixels)={data.shape[1]}\nPixel Size (um)={voxel_um:.5f}\n"
           "Minimum for CS to Image Conversion=0.000000\n"
           "Maximum for CS to Image Conversion=0.080000\n"
           f"[File name convention]\nFilename Index Length=8\nFilename Prefix={prefix}\n")
    (folder / f"{prefix}.log").write_text(log)  # the name NRecon gives: <prefix>.log, prefix ends _rec
    return folder


def _vax_f(v: float) -> bytes:
    i = struct.unpack("<I", struct.pack("<f", 4.0 * v))[0]
    return bytes([(i >> 16) & 255, (i >> 24) & 255, i & 255, (i >> 8) & 255])


def _vax_d(v: float) -> bytes:
    q = struct.unpack("<Q", struct.pack("<d", 4.0 * v))[0]
    return _vax_f_bits(q >> 32) + _vax_f_bits(q & 0xFFFFFFFF)


def _vax_f_bits(i: int) -> bytes:
    return bytes([(i >> 16) & 255, (i >> 24) & 255, i & 255, (i >> 8) & 255])


def write_isq(path: Path, vol: np.ndarray, voxel_um: float, *, mu_scaling: int = 4096,
              slope: float | None = 355.52, intercept: float = -196.6,
              mu_water: float = 0.514) -> Path:
    """A Scanco ISQ: 512-byte header, an extended header whose 'Calibration' block holds the
    density slope (per 1/cm), intercept and mu water (omitted when ``slope`` is None), then
    int16 data, x fastest."""
    nz, ny, nx = vol.shape
    h = bytearray(512)
    h[:16] = b"CTDATA-HEADER_V1"
    struct.pack_into("<3i", h, 16, 3, vol.size * 2, vol.size * 2 // 512)
    struct.pack_into("<6i", h, 44, nx, ny, nz, round(nx * voxel_um), round(ny * voxel_um),
                     round(nz * voxel_um))
    struct.pack_into("<3i", h, 68, round(voxel_um), round(voxel_um), 0)
    struct.pack_into("<3i", h, 80, int(vol.min()), int(vol.max()), mu_scaling)
    ext = bytearray(3 * 512) if slope is not None else bytearray()
    if slope is not None:
        ext[8:24] = b"Calibration     "
        struct.pack_into("<i", ext, 24, 2)
        cal = 512
        ext[cal + 648:cal + 664] = b"mg HA/ccm".ljust(16)
        ext[cal + 664:cal + 672] = _vax_d(slope)
        ext[cal + 672:cal + 680] = _vax_d(intercept)
        ext[cal + 688:cal + 696] = _vax_d(mu_water)
    struct.pack_into("<i", h, 508, len(ext) // 512)
    path.write_bytes(bytes(h) + bytes(ext) + vol.astype("<i2").tobytes())
    return path


def write_aim(path: Path, vol: np.ndarray, voxel_um: float, *, mu_scaling: int = 4096,
              slope: float = 355.52, intercept: float = -196.6, mu_water: float = 0.514) -> Path:
    """A Scanco AIM v020 (int16, uncompressed) with the calibration in its processing log."""
    nz, ny, nx = vol.shape
    logtxt = ("!\n! Processing Log\n!\n"
              f"Mu_Scaling                    {mu_scaling}\n"
              f"HU: mu water                  {mu_water:.5f}\n"
              f"Density: unit                 mg HA/ccm\n"
              f"Density: slope                {slope:.8e}\n"
              f"Density: intercept            {intercept:.8e}\n").encode("latin-1")
    pre = struct.pack("<5i", 20, 140, len(logtxt), 0, 0)
    st = bytearray(140)
    struct.pack_into("<i", st, 20, 0x00020002)
    struct.pack_into("<21i", st, 24, 0, 0, 0, nx, ny, nz, *([0] * 15))
    for i in range(3):
        st[108 + 4 * i:112 + 4 * i] = _vax_f(voxel_um / 1000.0)
    path.write_bytes(pre + bytes(st) + logtxt + vol.astype("<i2").tobytes())
    return path


def write_tiff_stack(path: Path, vol: np.ndarray, voxel_um: float | None) -> Path:
    """A multi-page TIFF; with ``voxel_um`` ImageJ metadata (unit um, spacing) and X/Y
    resolution, else no voxel size (the manifest must give it)."""
    import tifffile

    if voxel_um is None:
        tifffile.imwrite(path, vol)
    else:
        tifffile.imwrite(path, vol, imagej=True, resolution=(1 / voxel_um, 1 / voxel_um),
                         metadata={"unit": "um", "spacing": voxel_um, "axes": "ZYX"})
    return path


def write_nrrd(path: Path, vol: np.ndarray, voxel_um: float) -> Path:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(vol)
    img.SetSpacing((voxel_um / 1000.0,) * 3)
    sitk.WriteImage(img, str(path))
    return path


def make_samples(out: Path, *, voxel_um: float = 10.0) -> dict:
    """Every format of one phantom into ``out``, with truth.json, rods.yaml, a VOI map, the
    manifest and a config carrying the scanner calibration."""
    out.mkdir(parents=True, exist_ok=True)
    vol, voi, truth = phantom()
    t = truth_for(truth, voxel_um)
    write_bruker(out / "bruker", bruker_grey(vol), voxel_um)
    sv, st = scanco_stored(vol)
    write_isq(out / "stack.isq", sv, voxel_um)
    write_aim(out / "stack.aim", sv, voxel_um)
    t["scanco"] = truth_for(st, voxel_um)
    write_tiff_stack(out / "stack.tif", vol.astype(np.uint16), voxel_um)
    write_nrrd(out / "stack.nrrd", vol, voxel_um)
    write_tiff_stack(out / "voi.tif", voi, voxel_um)
    (out / "voi.json").write_text(json.dumps({"1": "aorta", "2": "rods"}))
    (out / "rods.yaml").write_text(rods_yaml(vol.shape, voxel_um))
    (out / "truth.json").write_text(json.dumps(t, indent=1))
    (out / "manifest.csv").write_text(
        "case_id,path,voi,animal_id,group,treatment,time_point\n"
        "M01_w8,stack.tif,voi.tif,M01,adenine,0.2% adenine diet,week 8\n"
        "M02_w8,stack.nrrd,,M02,control,standard chow,week 8\n")
    (out / "microct_sample.yaml").write_text(
        "microct:\n"
        f"  calibration_slope: {SLOPE}\n  calibration_intercept: {INTERCEPT}\n"
        "  calibration_source: 'config: the simulated scanner of sample_data.microct'\n")
    return t


def make_animal_study(out: Path, *, per_group: int = 4, voxel_um: float = 10.0) -> Path:
    """A made-up animal study: ``per_group`` control and adenine mice at week 8, each a TIFF
    stack of the phantom without its rods (adenine mice carry more intimal plaques: 6-8
    against 0-2), with a manifest (animal_id, group, treatment, time_point) and the scanner's
    calibration config.
    Returns the manifest's path."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["case_id,path,animal_id,group,treatment,time_point"]
    for g, (group, treatment, base) in enumerate((("control", "standard chow", 0),
                                                 ("adenine", "0.2% adenine diet", 6))):
        for i in range(per_group):
            aid = f"{group[0].upper()}{i + 1:02d}"
            vol = phantom(seed=100 * g + i, plaques=base + i % 3, rods=False)[0]
            write_tiff_stack(out / f"{aid}.tif", vol.astype(np.uint16), voxel_um)
            lines.append(f"{aid}_w8,{aid}.tif,{aid},{group},{treatment},week 8")
    (out / "manifest.csv").write_text("\n".join(lines) + "\n")
    (out / "microct.yaml").write_text(
        "microct:\n"
        f"  calibration_slope: {SLOPE}\n  calibration_intercept: {INTERCEPT}\n"
        "  calibration_source: 'config: the simulated scanner of sample_data.microct'\n")
    return out / "manifest.csv"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("sample_data/microct"))
    a = ap.parse_args(argv)
    print(json.dumps(make_samples(a.out), indent=1))


if __name__ == "__main__":
    main()
