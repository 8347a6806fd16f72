"""The protocol gate (README, 'The reference protocol'): every row says how its scan departs
from the reference calcium-scoring protocol and whether its Agatston is comparable."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from vascalc.analyse import analyse
from vascalc.config.schema import Config
from vascalc.flags import lookup
from vascalc.records import ScanMeta

from tests.conftest import volume

REFERENCE = ScanMeta(manufacturer="SIEMENS", kernel="B35f", kvp=120.0, slice_thickness_mm=3.0)


def _scan(meta: ScanMeta = REFERENCE, increment: float = 3.0):
    hu = np.full((6, 30, 30), 20)
    hu[2:4, 10:14, 10:14] = 450  # the same calcium in every variant
    return volume(hu, (increment, 0.6, 0.6), meta=meta)


def _gate(meta=REFERENCE, increment=3.0, config=None, **kw):
    r = analyse(_scan(meta, increment), config or Config(), case_id="p", **kw)
    return r.agatston_comparable, r.protocol_deviations


def test_the_reference_protocol_is_comparable_and_names_nothing():
    assert _gate() == (True, ())


@pytest.mark.parametrize("change,increment,code", [
    (dict(kvp=100.0), 3.0, "kvp_not_120"),
    (dict(kvp=None), 3.0, "kvp_unknown"),
    (dict(slice_thickness_mm=5.0), 3.0, "slice_thickness_off_protocol"),
    ({}, 5.0, "slice_increment_off_protocol"),
    (dict(kernel="B70f"), 3.0, "kernel_not_reference"),
    (dict(kernel=""), 3.0, "kernel_unknown"),
    (dict(manufacturer="ACME", kernel="B35f"), 3.0, "kernel_not_reference"),
    (dict(contrast_agent="IOHEXOL"), 3.0, "contrast_enhanced"),
])
def test_each_departure_is_named_and_not_comparable(change, increment, code):
    comparable, codes = _gate(replace(REFERENCE, **change), increment)
    assert comparable is False and code in codes
    assert lookup(code) is not None  # every code is in the flag registry, with its meaning


def test_a_100_kvp_5_mm_scan_says_both_and_the_reference_scan_neither():
    _, codes = _gate(replace(REFERENCE, kvp=100.0, slice_thickness_mm=5.0), 5.0)
    assert {"kvp_not_120", "slice_thickness_off_protocol", "slice_increment_off_protocol"} <= set(
        codes)
    _, codes = _gate()
    assert not {"kvp_not_120", "slice_thickness_off_protocol"} & set(codes)


def test_each_manufacturers_reference_kernel_passes():
    for maker, kernel in (("GE MEDICAL SYSTEMS", "STANDARD"), ("Philips", "B"),
                          ("SIEMENS", "B35f"), ("TOSHIBA", "FC12"), ("CANON MEDICAL", "FC12")):
        assert _gate(replace(REFERENCE, manufacturer=maker, kernel=kernel)) == (True, ()), maker


def test_a_kvp_table_that_adapts_the_thresholds_is_not_a_kvp_deviation():
    cfg = Config(scoring={"kvp_table": {100.0: (147.0, 228.0, 342.0, 456.0)},
                          "kvp_select": "header"})
    r = analyse(_scan(replace(REFERENCE, kvp=100.0)), cfg, case_id="p")
    assert "kvp_not_120" not in r.protocol_deviations
    assert r.settings["threshold_source"].startswith("kvp_table")  # said where it came from


def test_coronary_scope_needs_ecg_gating_recorded():
    lad = np.zeros((6, 30, 30), bool)
    lad[:, 8:16, 8:16] = True
    cfg = Config(scoring={"scope": "coronary"})
    comparable, codes = _gate(config=cfg, regions=[("LAD", lad)])
    assert comparable is False and "ecg_gating_not_recorded" in codes
    assert _gate(replace(REFERENCE, ecg_gated=True), config=cfg, regions=[("LAD", lad)]) == (
        True, ())


def test_a_vascular_mask_cut_by_the_field_of_view_is_named():
    aorta = np.zeros((6, 30, 30), bool)
    aorta[:, 0:16, 8:16] = True  # reaches the first row: the scan cuts the aorta
    comparable, codes = _gate(regions=[("aorta", aorta)])
    assert "fov_cuts:aorta" in codes and comparable is False
    aorta[:, 0, :] = False
    assert _gate(regions=[("aorta", aorta)]) == (True, ())


# --- #35 item 19: unknown is unknown -----------------------------------------------------

def test_no_slice_thickness_is_not_comparable_and_says_which_fact_is_missing():
    comparable, codes = _gate(replace(REFERENCE, slice_thickness_mm=None))
    assert comparable is False and "slice_thickness_unknown" in codes
    assert "slice_thickness_off_protocol" not in codes  # unknown, not 'off'
    assert lookup("slice_thickness_unknown") is not None


@pytest.mark.parametrize("technique, trigger, gated", [
    ("NO", "350", False), ("NONE", None, False), ("", "0", None), ("", "0.0", None),
    ("UNKNOWN", None, None), ("PROSPECTIVE", None, True), ("", "350", True),
])
def test_ecg_gating_words_and_a_zero_trigger_time(technique, trigger, gated):
    from vascalc.values import ecg_gated

    assert ecg_gated(technique, trigger) is gated


@pytest.mark.parametrize("gated, code", [(None, "ecg_gating_not_recorded"),
                                         (False, "ecg_not_gated")])
def test_a_coronary_scan_not_gated_or_unknown_is_not_comparable_and_named(gated, code):
    lad = np.zeros((6, 30, 30), bool)
    lad[:, 8:16, 8:16] = True
    cfg = Config(scoring={"scope": "coronary"})
    comparable, codes = _gate(replace(REFERENCE, ecg_gated=gated), config=cfg,
                              regions=[("LAD", lad)])
    assert comparable is False and code in codes and lookup(code) is not None


def test_the_header_parser_reads_no_and_a_zero_trigger_time_as_not_gated(tmp_path):
    """Through the real reader: CardiacSynchronizationTechnique 'NO' and TriggerTime 0."""
    from vascalc.io.dicom_header import read_header

    from sample_data.dicom_writer import SeriesSpec, write_series

    hu = np.full((2, 8, 8), 40.0)
    hu[:, 0, :] = -1000
    a = write_series(tmp_path / "a", hu, SeriesSpec(extra={"CardiacSynchronizationTechnique":
                                                           "NO", "TriggerTime": "350"}))
    b = write_series(tmp_path / "b", hu, SeriesSpec(extra={"TriggerTime": "0"}))
    assert read_header(a[0]).meta.ecg_gated is False
    assert read_header(a[0], fast=False).meta.ecg_gated is False
    assert read_header(b[0]).meta.ecg_gated is None
