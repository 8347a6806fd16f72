"""vascalc segment: the TotalSegmentator adapter, from the call it makes to the tables.

TotalSegmentator itself is an optional extra that CI never installs (torch, model weights from
the network). Its Python API is stood in for by a function with the same keyword interface
that writes the label map TotalSegmentator would write for a phantom (v2 class ids, on the
grid of the NIfTI it was given); everything from that file onward is vascalc's real path. The
real TotalSegmentator outputs in ../shared/data are read by tests/test_scopes.py."""

from __future__ import annotations

import csv
import inspect
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.config.label_tables import LABEL_TABLES
from vascalc.config.load import load_config
from vascalc.errors import UsageError
from vascalc.run.discovery import cases_from_manifest
from vascalc.segmentation import totalsegmentator as ts

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "configs" / "totalsegmentator.yaml"
V2 = {name: i for i, name in LABEL_TABLES["totalsegmentator_v2"].items()}


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


class FakeTotalSegmentator:
    """Writes, for the phantom whose CT it is given, the v2 label map of its aorta and
    vertebra masks (TotalSegmentator has no LAD class). Records every call."""

    def __init__(self, phantoms: Path):
        self.phantoms = phantoms
        self.calls: list[dict] = []

    def __call__(self, input, output, **kw):
        self.calls.append({"input": Path(input), "output": Path(output), **kw})
        ct = nib.load(str(input))
        labels = np.zeros(ct.shape, dtype=np.uint8)
        for case in self.phantoms.iterdir():  # the phantom with this CT's shape and affine
            regions = case / "regions"
            if not regions.is_dir():
                continue
            aorta = nib.load(str(regions / "aorta.nii.gz"))
            if aorta.shape != ct.shape or not np.allclose(aorta.affine, ct.affine):
                continue
            for name in ("aorta", "vertebrae_T12", "vertebrae_L1"):
                f = regions / f"{name}.nii.gz"
                if f.exists():
                    labels[np.asarray(nib.load(str(f)).dataobj) > 0] = V2[name]
            break
        else:
            raise AssertionError(f"no phantom on the grid of {input}")
        nib.save(nib.Nifti1Image(labels, ct.affine), str(output))


def test_the_stand_in_has_the_real_api_keywords():
    """The keywords the adapter passes exist in TotalSegmentator's totalsegmentator() (2.x):
    checked against the installed package where it is installed (never in CI)."""
    real = pytest.importorskip("totalsegmentator.python_api",
                               reason="TotalSegmentator is an optional extra (vascalc[segment])")
    params = inspect.signature(real.totalsegmentator).parameters
    assert {"input", "output", "ml", "fast", "task", "roi_subset", "device", "quiet"} <= set(params)


def test_roi_subset_is_the_profiles_classes_only():
    subset = ts.roi_subset(load_config(PROFILE))
    assert {"aorta", "heart", "iliac_artery_left", "brachiocephalic_trunk", "vertebrae_T12",
            "vertebrae_L1", "rib_left_1", "skull", "costal_cartilages"} <= set(subset)
    assert not {"liver", "small_bowel", "spleen", "lung_upper_lobe_left"} & set(subset)
    assert set(subset) <= set(V2)


def test_without_totalsegmentator_the_command_says_how_to_install(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_ts(name, *a, **k):
        if name.startswith("totalsegmentator"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ts)
    with pytest.raises(UsageError, match=r"pip install 'vascalc\[segment\]'"):
        ts.api()
    res = CliRunner().invoke(app, ["segment", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "vascalc[segment]" in res.output


def test_segment_caches_resumes_and_feeds_run(sample_data, tmp_path):
    fake = FakeTotalSegmentator(sample_data)
    cfg = load_config(PROFILE)
    cases = cases_from_manifest(sample_data / "manifest.csv")
    manifest, status = ts.segment_cases(cases, cfg, tmp_path / "seg", run=fake)
    assert [s["status"] for s in status] == ["ok"] * 5 and len(fake.calls) == 5
    call = fake.calls[0]
    assert (call["task"], call["ml"], call["fast"], call["device"]) == ("total", True, True, "cpu")
    assert call["roi_subset"] == ts.roi_subset(cfg) and call["quiet"] is True
    assert not call["input"].exists()  # the CT handed over was a temporary file
    prov = json.loads((Path(status[0]["regions"]).parent / "provenance.json").read_text())
    assert prov["segmenter"] == "TotalSegmentator" and prov["options"]["task"] == "total"
    assert prov["fingerprint"] == cases[0].fingerprint()
    # a rerun reuses every map; a changed input is segmented again
    _, again = ts.segment_cases(cases, cfg, tmp_path / "seg", run=fake)
    assert all(s["reused"] for s in again) and len(fake.calls) == 5
    _, full = ts.segment_cases(cases[:1], cfg, tmp_path / "seg", fast=False, run=fake)
    assert not full[0]["reused"] and len(fake.calls) == 6
    # the manifest carries the case's own values and scores through the profile
    m = tmp_path / "seg" / "manifest.csv"
    cols = list(dict.fromkeys(k for r in manifest for k in r))
    with open(m, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(manifest)
    res = CliRunner().invoke(app, ["run", str(m), "--out", str(tmp_path / "o"), "-c", str(PROFILE),
                                   "-j", "1", "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    truth = {p.parent.name: json.loads(p.read_text()) for p in sample_data.glob("*/truth.json")}
    for r in rows(tmp_path / "o" / "scans.csv"):
        aorta = truth[r["case_id"]]["regions"]["aorta"]
        # headline: the aorta's plaques (split at T12/L1 where both vertebrae are given); the
        # spine is bone, the LAD plaque (no TotalSegmentator class) is outside: neither counts
        assert r["scope"] == "vascular"
        assert float(r["agatston"]) == pytest.approx(aorta["agatston"], rel=1e-9, abs=1e-9)
        assert float(r["volume_mm3"]) == pytest.approx(aorta["volume_mm3"], rel=1e-9, abs=1e-9)
        assert r["region_source"].startswith("TotalSegmentator ") and "task total fast" in \
            r["region_source"]
        assert r["height_cm"] == {"P01_T1": "172.0", "P01_T2": "172.0", "P03": "158.0"}.get(
            r["case_id"], r["height_cm"])
    assert {r["timepoint"] for r in rows(tmp_path / "o" / "scans.csv")} == {"1", "2"}


def test_segment_command_writes_manifest_and_status(sample_data, tmp_path, monkeypatch):
    fake = FakeTotalSegmentator(sample_data)
    monkeypatch.setattr(ts, "api", lambda: fake)
    res = CliRunner().invoke(app, ["segment", str(sample_data / "P02" / "dicom"),
                                   str(tmp_path / "missing"), "--out", str(tmp_path / "seg"),
                                   "-c", str(PROFILE)])
    assert res.exit_code == 2  # a missing input is a usage error: nothing was segmented
    res = CliRunner().invoke(app, ["segment", str(sample_data / "P02" / "dicom"), "--out",
                                   str(tmp_path / "seg"), "-c", str(PROFILE)])
    assert res.exit_code == 0, res.output
    st = rows(tmp_path / "seg" / "segmentation.csv")
    assert [(s["case_id"], s["status"]) for s in st] == [("P02_dicom", "ok")]
    m = rows(tmp_path / "seg" / "manifest.csv")
    assert Path(m[0]["regions"]).is_file() and Path(m[0]["path"]).is_dir()
