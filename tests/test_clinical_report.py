"""#26: a report a radiologist would sign. A coronary case read by a reader (four arteries,
three key images) fits two A4 pages with the case and "page N of M" on each; its per-artery
table, CAC-DRS and MESA risk are the tables'; the statements follow their sources."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.outputs import clinical
from vascalc.outputs.arteries import whole

from tests.test_reports import ROOT, artery_cells, read, reported  # noqa: F401 - a fixture

POPPLER = shutil.which("pdfinfo") and shutil.which("pdftotext")


@pytest.fixture(scope="module")
def read_run(reported, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """The sample run with reports, read by r1 as the golden 'sample_reader' run is, rescored."""
    from vascalc.review.scripted import write_reads

    from tests.golden.make_golden import READS

    out = tmp_path_factory.mktemp("read") / "out"
    shutil.copytree(reported, out)
    finished = sorted({(r[0], r[1]) for r in READS["sample_reader"]})
    write_reads(out, READS["sample_reader"], done=finished, rest_not_coronary=finished)
    res = CliRunner().invoke(app, ["rescore", str(out), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def _pdf_pages(pdf) -> list[str]:
    n = int(re.search(r"Pages:\s+(\d+)", subprocess.run(
        ["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout).group(1))
    return [" ".join(subprocess.run(["pdftotext", "-f", str(k), "-l", str(k), "-enc", "UTF-8",
                                     str(pdf), "-"], capture_output=True, check=True
                                    ).stdout.decode().split()) for k in range(1, n + 1)]


def test_the_coronary_report_holds_the_tables_numbers(read_run):
    scan = next(r for r in read(read_run / "scans.csv") if r["case_id"] == "P02")
    regions = {r["region"]: r for r in read(read_run / "regions.csv") if r["case_id"] == "P02"}
    html = (read_run / "cases" / "P02" / "report.html").read_text()
    table = artery_cells(html)
    assert list(table) == ["LM", "LAD", "LCX", "RCA"]
    for artery, cells in table.items():
        assert cells == [whole(regions[artery]["agatston"]),
                         f"{float(regions[artery]['volume_mm3']):,.1f}",
                         str(int(regions[artery]["n_lesions"]))], artery
    assert scan["cac_drs"] and f"CAC-DRS {scan['cac_drs']}/{scan['cac_drs_vessels']}" in html
    assert f"MESA 10-year coronary heart disease risk {float(scan['mesa_chd_10y_risk_pct']):.1f} %" \
        in html
    assert "Left main involved" in html and "final</span>" in html
    assert f"Coronary artery calcium: Agatston score {whole(scan['agatston'])}" in html
    # the aortic valve the reader labelled, read by the sex-specific criteria (P02: female)
    assert re.search(r"Aortic valve</th><td>Agatston \d+, volume [\d.,]+ mm3; severe aortic "
                     r"stenosis unlikely by the ESC/EACTS calcium criteria for females", html)


@pytest.mark.skipif(not POPPLER, reason="poppler-utils (pdfinfo, pdftotext) not installed; "
                    ".ci/run installs it")
def test_a_coronary_case_with_four_arteries_fits_two_pages_naming_the_case_on_each(read_run):
    case = read_run / "cases" / "P02"
    assert len(list(case.glob("key_image_*.png"))) == 3
    pages = _pdf_pages(case / "report.pdf")
    assert 1 <= len(pages) <= 2
    for k, text in enumerate(pages, start=1):
        assert f"case P02, page {k} of {len(pages)}" in text, k
    words = " ".join(pages)
    for every in ("Impression", "Technique", "Key images", "Method", "CAC-DRS A1/N4"):
        assert every in words, every


def test_every_sample_pdf_is_at_most_two_pages(read_run):
    if not POPPLER:
        pytest.skip("poppler-utils (pdfinfo) not installed; .ci/run installs it")
    for case in sorted((read_run / "cases").iterdir()):
        assert 1 <= len(_pdf_pages(case / "report.pdf")) <= 2, case.name


def _row(**over):
    row = {"status": "ok", "scope": "coronary", "scope_regions": "LAD;RCA", "agatston": 0.0,
           "volume_mm3": 0.0, "risk_category": "0", "cac_drs": "A0", "cac_drs_vessels": "",
           "headline_threshold_hu": 130.0, "headline_threshold_rule": "", "withheld_reason": "",
           "agatston_comparable": True, "protocol_deviations": "", "quality_flags": "",
           "risk_basis": "coronary regions: LAD, RCA"}
    return {**row, **over}


def test_statements_follow_the_score_and_its_sources():
    # #34.2: the CAC = 0 statements only on a confirmed zero (a reader's final)
    final = {"reader": "r1", "review_done": True, "unlabelled_volume_mm3": 0.0}
    zero = clinical.statements(_row(**final))
    assert len(zero) == 1 and "5 to 10 years" in zero[0][1] and "Grundy" in zero[0][1]
    confirmed = _row(reader="r1", review_done="true", unlabelled_volume_mm3=41.5,
                     rest_confirmed_not_coronary="true")
    assert clinical.statements(confirmed) == zero
    for unconfirmed in (_row(), _row(reader="r1", review_done=False, unlabelled_volume_mm3=0.0),
                        _row(reader="r1", review_done=True, unlabelled_volume_mm3=41.5,
                             rest_confirmed_not_coronary=False)):
        said = clinical.statements(unconfirmed)
        assert len(said) == 1 and "not confirmed by a reader" in said[0][1], unconfirmed
        assert "statin" not in said[0][1] and "Grundy" not in said[0][1]
    high = clinical.statements(_row(agatston=1500.4, risk_category=">400", cac_drs="A3"))
    assert high[0][0] == "alert" and "1,500" in high[0][1]
    assert clinical.statements(_row(agatston=999.0, risk_category=">400")) == []
    # not a score by the definition (the one definition, core.scopes.risk_basis): nothing said
    assert clinical.statements(_row(
        headline_threshold_rule="phase_threshold:arterial",
        risk_basis="empty: coronary calcium found by the contrast rule phase_threshold:arterial",
    )) == []
    assert clinical.statements(_row(scope="vascular")) == []
    assert clinical.statements(_row(risk_category="")) == []


def test_the_headline_is_named_by_scope_territories_and_rule():
    assert clinical.headline_title(_row()) == "Coronary artery calcium: Agatston score"
    vascular = _row(scope="vascular", scope_regions="aorta;LAD")
    assert clinical.headline_title(vascular) == (
        "Vascular calcium, aorta + LAD: sum of the territories' Agatston scores")
    ruled = _row(scope="vascular", scope_regions="aorta", headline_threshold_hu=300.0,
                 headline_threshold_rule="phase_threshold:venous")
    assert "not an Agatston score" in clinical.headline_title(ruled)
    bone = _row(scope="whole_volume", scope_regions="", quality_flags="bone_dominated")
    assert "mostly bone" in clinical.headline_title(bone)


@pytest.mark.parametrize("sex, score, word", [("male", 3100, "very likely"),
                                              ("male", 2500, "likely"),
                                              ("male", 1800, "indeterminate"),
                                              ("male", 1500, "unlikely"),
                                              ("female", 1700, "very likely"),
                                              ("female", 1300, "likely"),
                                              ("female", 700, "unlikely")])
def test_aortic_valve_severity_by_sex(sex, score, word):
    assert f"severe aortic stenosis {word} by" in clinical.valve_severity(score, sex, True)
    assert "not given" in clinical.valve_severity(score, "", True)
    assert "not an Agatston score" in clinical.valve_severity(score, sex, False)


def _identity_report(sample_data, tmp_path, **attrs):
    """P03 with ``attrs`` in every header (values longer than their VR allowed, as a bad
    export holds them), scored with identity: full; its case folder. Skips without poppler."""
    import warnings

    import pydicom

    if not POPPLER:
        pytest.skip("poppler-utils (pdftotext) not installed; .ci/run installs it")
    series = tmp_path / "s"
    shutil.copytree(sample_data / "P03" / "dicom", series)
    for f in series.iterdir():
        ds = pydicom.dcmread(f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for key, value in attrs.items():
                setattr(ds, key, value)
            ds.save_as(f)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("report:\n  enabled: true\n  identity: full\n  dicom_seg: false\n"
                   "  dicom_sr: false\n  nifti: false\n")
    res = CliRunner().invoke(app, ["run", str(series), "--out", str(tmp_path / "o"), "-c",
                                   str(cfg), "-j", "1", "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (case,) = (tmp_path / "o" / "cases").iterdir()
    return case


def test_a_long_patient_name_is_not_clipped_and_the_birth_date_is_readable(sample_data,
                                                                         tmp_path):
    """#22: the PDF clipped a long patient name (identity: full) and showed 19500101."""

    long_name = "Vandenberghe-Oppenheimer^Maximiliane Johanna^Friederike"  # 56 of 64
    case = _identity_report(sample_data, tmp_path, PatientName=long_name,
                            PatientBirthDate="19500101")
    words = " ".join(_pdf_pages(case / "report.pdf"))
    written = "Maximiliane Johanna Friederike Vandenberghe-Oppenheimer"
    # every word of the name is on the page (a clipped name loses its end)
    assert all(w in words for w in written.split()), words[:400]
    assert "1950-01-01" in words and "19500101" not in words


def test_a_patient_report_that_fails_costs_no_other_report_and_no_table(sample_data, tmp_path,
                                                                        monkeypatch):
    """A page is a view of the tables: one patient's report failing is logged (without the
    patient id) and the run, its tables, the index and the other patients' reports stand."""
    from vascalc.outputs import patient_report

    real = patient_report.patient_html

    def broken(pid, rows):
        if pid == "PHANTOM-02":
            raise RuntimeError("template trouble")
        return real(pid, rows)

    monkeypatch.setattr(patient_report, "patient_html", broken)
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["run", str(sample_data / "manifest.csv"), "--out", str(out),
                                   "-c", str(ROOT / "configs" / "sample_data.yaml"), "-j", "1",
                                   "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert len(read(out / "scans.csv")) == 5 and (out / "index.html").is_file()
    assert (out / "patients" / "PHANTOM-01" / "report.pdf").is_file()
    assert not (out / "patients" / "PHANTOM-02").exists()
    log = (out / "vascalc.log").read_text()
    assert "a patient report could not be written: RuntimeError: template trouble" in log
    assert "PHANTOM-02" not in log.split("template trouble")[0].splitlines()[-1]


def test_reports_never_raise_on_rows_that_are_not_what_vascalc_wrote(read_run):
    """A report is written from rows read back from disk: every field of a scans or regions
    row replaced by None, '', text, NaN, 1e308 or a boolean still gives a page (each value
    is taken as its registry type first), never a traceback."""
    import copy
    import json
    import random

    from vascalc.outputs.case_report import case_html
    from vascalc.outputs.patient_report import patient_html
    from vascalc.outputs.report import index_html
    from vascalc.results.document import with_rows

    docs = [with_rows(json.loads(p.read_text())) for p in sorted(read_run.glob("cases/*/result.json"))]
    scans = read(read_run / "scans.csv")
    odd = [None, "", "x", 0, -1.0, 1e308, float("nan"), "true", True, "<b>x</b>", "2020-02-30"]
    rng = random.Random(7)
    for _ in range(40):
        d = copy.deepcopy(rng.choice(docs))
        for k in rng.sample(sorted(d["scan"]), 10):
            d["scan"][k] = rng.choice(odd)
        for r in d.get("regions", []):
            r[rng.choice(sorted(r))] = rng.choice(odd)
        html = case_html(d, [], identity={}, config={})
        assert "<b>x</b>" not in html  # text is escaped, never markup
        rows = copy.deepcopy(scans)
        for r in rows:
            for k in rng.sample(sorted(r), 5):
                r[k] = rng.choice(odd)
        assert "<b>x</b>" not in index_html(rows)
        assert "<b>x</b>" not in patient_html("P", rows)


def test_an_unbroken_name_and_a_64_character_id_stay_in_their_column(sample_data, tmp_path):
    """#35 item 21: a very long unbroken patient name and a 64-character PatientID overprinted
    'Reader' and 'not reviewed' beside them. Every word box of the name and the id on page 1
    ends left of the report-status column's words (pdftotext -bbox)."""
    import re


    case = _identity_report(sample_data, tmp_path, PatientName="A" * 60 + "^" + "B" * 60,
                            PatientID="X" * 64)
    html = subprocess.run(["pdftotext", "-bbox", "-f", "1", "-l", "1", str(case / "report.pdf"),
                           "-"], capture_output=True, text=True, check=True).stdout
    words = [(float(a), float(b), float(c), float(d), w) for a, b, c, d, w in re.findall(
        r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)<', html)]
    status = [w for w in words if w[4] in ("Reader", "reviewed")]
    ident = [w for w in words if re.fullmatch(r"[ABX]{8,},?", w[4]) and w[1] > 60]  # not the header
    assert status and ident, "the page lost the words this test measures"
    left_edge = min(w[0] for w in status)
    assert all(w[2] < left_edge for w in ident), [w for w in ident if w[2] >= left_edge]
