"""Spectral CT (issue #37) on generated phantoms with known truth (sample_data.spectral):
series kinds from headers, energy thresholds against Graeni 2018 and the generator's truth,
maps never scored, VNC flagged and kept from risk categories, every spectral row naming its
kind, energy and threshold rule."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner
from vascalc.analyse import analyse
from vascalc.cli.app import app
from vascalc.config.schema import Config
from vascalc.core.spectral import GRAENI_2018, physics_threshold
from vascalc.errors import SpectralMapError, ThresholdError, VNCRefusedError
from vascalc.io.dicom_header import read_header
from vascalc.io.load import load_ct
from vascalc.records import CTVolume

from sample_data.spectral import SERIES, Beam, render, threshold_check_phantom, write

SPACING = (1.0, 0.5, 0.5)


def _cfg(rule: str = "fixed", **kw) -> Config:
    risk = kw.pop("risk", {})
    return Config.model_validate({"scoring": {"energy_threshold": rule, "fov_is_coronary": True,
                                              "scope": "coronary", **kw}, "risk": risk})


def _phantom(beam: Beam, density: float = 600.0) -> np.ndarray:
    return render(beam, [((4.0, 12.0, 12.0), 5.0, density)], shape=(8, 24, 24),
                  spacing_mm=SPACING, noise_hu=0.0)


def _series(tmp_path, convention: str, beam: Beam, density: float = 600.0):
    folder = tmp_path / convention
    write(folder, _phantom(beam, density), convention=convention, beam=beam, spacing_mm=SPACING)
    return folder


@pytest.mark.parametrize("convention", sorted(SERIES))
def test_each_vendor_convention_is_read_as_its_kind(tmp_path, convention):
    kind = SERIES[convention][0]
    beam = Beam("kvp", 150.0, 0.6) if kind == "high_kv" else Beam("kvp", 80.0) \
        if kind == "low_kv" else Beam("kvp", 120.0)
    folder = _series(tmp_path, convention, beam)
    for fast in (True, False):  # the fast header parser and pydicom agree
        h = read_header(next(folder.iterdir()), fast=fast)
        assert h.meta.series_kind == kind, (convention, fast, h.meta)
    if convention in ("dicom_vmi", "siemens_vmi", "canon_vmi"):
        assert h.meta.energy_kev == 70.0
    if kind == "high_kv":
        assert h.meta.tin_filter_mm > 0


@pytest.mark.parametrize("kvp", sorted(GRAENI_2018))
def test_kvp_thresholds_within_7_hu_of_graeni_and_the_generator(kvp):
    beam = Beam("kvp", kvp)
    hu, _ = threshold_check_phantom(beam)
    truth = hu[8, 24, 24]  # the centre of the insert at the density of 130 HU at 120 kVp
    got = physics_threshold("kvp", kvp)
    assert abs(got - GRAENI_2018[kvp]) <= 7.0
    assert abs(got - truth) <= 7.0 and abs(truth - GRAENI_2018[kvp]) <= 7.0


@pytest.mark.parametrize("kev", [40, 50, 60, 70, 80, 100, 120, 140])
def test_vmi_threshold_read_from_the_header_matches_the_generator(tmp_path, kev):
    beam = Beam("kev", float(kev))
    hu, spacing = threshold_check_phantom(beam)
    folder = tmp_path / "vmi"
    write(folder, hu, convention="siemens_monoplus" if kev == 50 else "dicom_vmi", beam=beam,
          spacing_mm=spacing)
    if kev != 50:  # the DICOM attribute carries the keV, the description says 70
        for p in folder.iterdir():
            import pydicom
            ds = pydicom.dcmread(p)
            ds.MonoenergeticEnergyEquivalent = float(kev)
            ds.save_as(p)
    vol = load_ct(folder, _cfg("physics"))
    r = analyse(vol, _cfg("physics"), case_id="vmi")
    tol = 15.0 if kev < 65 else 7.0
    assert vol.meta.series_kind == "vmi" and vol.meta.energy_kev == float(kev)
    assert abs(r.settings["threshold_hu"] - hu[8, 24, 24]) <= tol
    assert r.settings["threshold_source"] == f"energy_physics:{kev}keV"


def test_table_rule_uses_graeni_and_refuses_an_energy_it_has_no_row_for(tmp_path):
    vol = load_ct(_series(tmp_path, "siemens_low", Beam("kvp", 80.0)), _cfg("table"))
    r = analyse(vol, _cfg("table"), case_id="low")
    assert r.settings["threshold_hu"] == 177.0 and r.risk_category  # published: Agatston
    assert "kvp_not_120" not in r.protocol_deviations
    high = load_ct(_series(tmp_path, "siemens_high", Beam("kvp", 150.0, 0.6)), _cfg("table"))
    with pytest.raises(ThresholdError, match="no published threshold for Sn150 kV"):
        analyse(high, _cfg("table"), case_id="high")
    r = analyse(high, _cfg("physics"), case_id="high")
    # a modelled threshold: named like a contrast rule's, no risk category, not comparable
    assert r.headline.threshold_rule == "energy_physics:Sn150kV"
    assert r.risk_category == "" and "energy rule" in r.risk_basis and not r.agatston_comparable
    fixed = analyse(high, _cfg("fixed"), case_id="high")
    assert fixed.settings["threshold_hu"] == 130.0
    assert "spectral_fixed_threshold" in fixed.quality_flags
    assert "spectral_fixed_threshold" in fixed.protocol_deviations


@pytest.mark.parametrize("convention", sorted(c for c, v in SERIES.items()
                                              if v[0] in ("iodine_map", "material_map",
                                                          "calcium_suppressed")))
@pytest.mark.parametrize("rule", ["fixed", "table", "physics"])
def test_no_map_is_ever_scored(tmp_path, convention, rule):
    folder = _series(tmp_path, convention, Beam("kvp", 120.0))
    with pytest.raises(SpectralMapError, match="not scored as HU") as err:
        load_ct(folder, _cfg(rule))  # io refuses it by its header
    assert err.value.code == "SPECTRAL_NOT_HU"
    meta = read_header(next(folder.iterdir())).meta
    vol = CTVolume(hu=np.rint(_phantom(Beam("kvp", 120.0))).astype(np.int16),
                   spacing_mm=SPACING, meta=meta)
    with pytest.raises(SpectralMapError, match="not scored as HU"):
        analyse(vol, _cfg(rule), case_id="map")  # and analyse, whatever built the volume


def test_vnc_is_flagged_and_has_no_risk_category_unless_accepted(tmp_path):
    vol = load_ct(_series(tmp_path, "siemens_vnc", Beam("kvp", 120.0)), _cfg())
    r = analyse(vol, _cfg(), case_id="vnc")
    assert r.headline.agatston > 0 and "vnc_underscores" in r.quality_flags
    assert r.risk_category == "" and r.cac_drs == "" and "virtual non-contrast" in r.risk_basis
    assert not r.agatston_comparable
    accepted = analyse(vol, _cfg(risk={"accept_vnc": True}), case_id="vnc")
    assert accepted.risk_category and accepted.cac_drs and "vnc_underscores" in accepted.quality_flags
    with pytest.raises(VNCRefusedError):
        analyse(vol, _cfg(vnc="refuse"), case_id="vnc")


def test_config_refuses_two_threshold_rules():
    with pytest.raises(ValueError, match="energy_threshold"):
        Config.model_validate({"scoring": {"energy_threshold": "table", "kvp_table": {
            80.0: [177, 272, 408, 544]}, "kvp_select": "header"}})


def test_every_spectral_row_names_its_kind_energy_and_rule(tmp_path):
    root = tmp_path / "in"
    beams = {"siemens_vmi": Beam("kev", 70.0), "siemens_low": Beam("kvp", 80.0),
             "siemens_high": Beam("kvp", 150.0, 0.6), "philips_vnc": Beam("kvp", 120.0),
             "siemens_mixed": Beam("kvp", 120.0), "philips_iodine": Beam("kvp", 120.0),
             "ge_water": Beam("kvp", 120.0), "conventional": Beam("kvp", 120.0)}
    for i, (conv, beam) in enumerate(beams.items()):
        write(root / conv, _phantom(beam), convention=conv, beam=beam, spacing_mm=SPACING,
              patient_id=f"P{i}", series_number=10 + i)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scoring:\n  energy_threshold: physics\n  fov_is_coronary: true\n")
    res = CliRunner().invoke(app, ["run", str(root), "--out", str(tmp_path / "o"), "-c",
                                   str(cfg)], catch_exceptions=False)
    assert res.exit_code == 1, res.output  # the two maps fail; every other case is written
    rows = list(csv.DictReader((tmp_path / "o" / "scans.csv").read_text().splitlines()))
    assert len(rows) == len(beams)
    failed = [r for r in rows if r["status"] == "failed"]
    assert sorted(r["error_code"] for r in failed) == ["SPECTRAL_NOT_HU"] * 2
    assert all(r["agatston"] == "" and r["volume_mm3"] == "" for r in failed)
    ok = {r["series_kind"]: r for r in rows if r["status"] == "ok"}
    assert set(ok) == {"vmi", "low_kv", "high_kv", "vnc", "mixed", "conventional"}
    assert ok["vmi"]["energy_label"] == "70 keV" and ok["vmi"]["energy_kev"] == "70.0"
    assert ok["high_kv"]["energy_label"] == "Sn150 kV"
    assert ok["low_kv"]["energy_label"] == "80 kV"
    for r in ok.values():
        assert r["energy_threshold_rule"] == "physics" and r["series_kind_source"] != "" \
            or r["series_kind"] == "conventional"
        assert r["energy_label"] and r["threshold_source"].startswith("energy_physics:")
    assert "vnc_underscores" in ok["vnc"]["quality_flags"] and ok["vnc"]["risk_category"] == ""
    assert "spectral_mixed_energy" in ok["mixed"]["quality_flags"]


@pytest.mark.parametrize("convention", ["philips_iodine", "dicom_iodine", "ge_water"])
def test_a_map_in_its_own_units_is_refused_by_its_header_not_as_implausible_hu(tmp_path,
                                                                               convention):
    """A real iodine or water map holds mg/mL or mg/cm3 with no air: refused as what it is
    (SPECTRAL_NOT_HU) before any pixel is checked as HU (which would say IMPLAUSIBLE_HU)."""
    mg = np.full((8, 24, 24), 12.0)
    mg[4, 8:16, 8:16] = 300.0
    write(tmp_path / "m", mg, convention=convention, beam=Beam("kvp", 120.0), spacing_mm=SPACING)
    with pytest.raises(SpectralMapError, match="not scored as HU") as err:
        load_ct(tmp_path / "m", _cfg())
    assert str(tmp_path / "m") in str(err.value)


def test_a_header_kvp_of_119_9_is_the_reference_under_physics(tmp_path):
    folder = _series(tmp_path, "conventional", Beam("kvp", 120.0))
    import pydicom
    for p in folder.iterdir():
        ds = pydicom.dcmread(p)
        ds.KVP = "119.9"
        ds.save_as(p)
    r = analyse(load_ct(folder, _cfg("physics")), _cfg("physics"), case_id="k")
    assert r.settings["threshold_hu"] == 130.0 and r.headline.threshold_rule == ""
    assert r.risk_category  # the Agatston definition holds
