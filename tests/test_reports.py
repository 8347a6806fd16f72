"""Reports and DICOM results: read back, validated, rendered in a real browser."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner
from vascalc.cli.app import app

from tests import dciodvfy
from tests.dciodvfy import needs_dciodvfy

ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = ROOT / "results" / "test-artefacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync"]


def read(path):
    return list(csv.DictReader(Path(path).read_text().splitlines()))


@pytest.fixture(scope="module")
def reported(sample_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("reported")
    res = CliRunner().invoke(app, ["run", str(sample_data / "manifest.csv"), "--out", str(out),
                                   "-c", str(ROOT / "configs" / "sample_data.yaml"), "-j", "1",
                                   "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def scans(out):
    return {r["case_id"]: r for r in read(out / "scans.csv")}


def test_every_case_has_its_artefacts_and_the_index_links_them(reported):
    for cid in scans(reported):
        d = reported / "cases" / cid
        doc = json.loads((d / "result.json").read_text())
        assert "artefact_error" not in doc
        for name in ("report.html", "report.pdf", "calcium_mask.nii.gz",
                     "lesion_labels.nii.gz", "scores.sr.dcm"):
            assert (d / name).stat().st_size > 0, (cid, name)
        # P04 has no calcium: no SEG, no key image, no empty MIP; the report says why
        assert (d / "calcium.seg.dcm").exists() == (cid != "P04")
        # P02's and P03's aortic plaques lie in front of the spine: in a coronal projection
        # the denser bone wins every ray, so the projection is left out and the report says why
        text = (d / "report.html").read_text()
        hidden = cid in ("P02", "P03")
        assert (d / "mip.png").exists() == (cid not in ("P02", "P03", "P04"))
        assert ("No projection: along every ray, denser calcium outside" in text) == hidden
        assert ("No calcium was found" in (d / "report.html").read_text()) == (cid == "P04")
    index = (reported / "index.html").read_text()
    assert all(f'href="cases/{cid}/report.html"' in index for cid in scans(reported))
    assert all(f'href="cases/{cid}/report.pdf"' in index for cid in scans(reported))
    for target in re.findall(r'href="([^"#]+)"', index):  # every link leads to a file
        assert (reported / target).is_file(), target
    for case in (reported / "cases").iterdir():  # the case reports' links too (prior studies)
        for target in re.findall(r'href="([^"#]+)"', (case / "report.html").read_text()):
            assert (case / target).resolve().is_file(), (case.name, target)


def test_sr_reads_back_with_the_scores_codes_identity_and_references(reported):
    import highdicom as hd

    row = scans(reported)["P01_T1"]
    sr = hd.sr.srread(reported / "cases" / "P01_T1" / "scores.sr.dcm")
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    flat = {}

    def walk(items):
        for it in items:
            if it.ValueType == "NUM":
                flat[(it.ConceptNameCodeSequence[0].CodingSchemeDesignator,
                      it.ConceptNameCodeSequence[0].CodeValue)] = (
                    float(it.MeasuredValueSequence[0].NumericValue),
                    it.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue)
            walk(it.get("ContentSequence", []))

    walk(sr.ContentSequence)
    # a vascular headline is not a coronary artery calcium score: no SCT 450360000 (the
    # coronary scope's SR carries it: test_scopes)
    assert row["scope"] == "vascular" and ("SCT", "450360000") not in flat
    assert flat[("DCM", "122660")] == (pytest.approx(float(row["volume_mm3"]), rel=1e-6), "mm3")
    assert flat[("DCM", "122661")] == (pytest.approx(float(row["mass_mg"]), rel=1e-6), "mg")
    text = sr.to_json()
    assert "112055" not in json.dumps(text) and "112056" in json.dumps(text)
    assert sr.PatientID == "PHANTOM-01" and str(sr.PatientName) == "Phantom^Digital"
    refs = {s.SeriesInstanceUID for st in sr.CurrentRequestedProcedureEvidenceSequence
            for s in st.ReferencedSeriesSequence}
    assert row["series_instance_uid"] in refs and len(refs) == 2  # the CT and the SEG


def test_seg_reads_back_with_the_kept_voxels(reported):
    import highdicom as hd

    row = scans(reported)["P01_T1"]
    seg = hd.seg.segread(reported / "cases" / "P01_T1" / "calcium.seg.dcm")
    assert seg.PatientID == "PHANTOM-01"
    labels = [d.SegmentLabel for d in seg.SegmentSequence]
    assert labels == ["calcium 130-199 HU peak", "calcium 200-299 HU peak",
                      "calcium 300-399 HU peak", "calcium >= 400 HU peak"]
    arr = seg.pixel_array  # frames x rows x cols x segments or labels
    voxel_mm3 = 0.7 * 0.7 * 3.0
    # the SEG holds every kept calcium voxel (the candidates of every region, bone included)
    assert int(np.count_nonzero(arr)) == round(float(row["all_calcium_volume_mm3"]) / voxel_mm3)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == row["series_instance_uid"]


def test_nifti_mask_and_labels_match_the_tables(reported):
    row = scans(reported)["P01_T1"]
    mask = nib.load(reported / "cases" / "P01_T1" / "calcium_mask.nii.gz")
    labels = nib.load(reported / "cases" / "P01_T1" / "lesion_labels.nii.gz")
    voxel_mm3 = float(np.prod(mask.header.get_zooms()))
    assert int(np.asarray(mask.dataobj).sum()) * voxel_mm3 == pytest.approx(
        float(row["all_calcium_volume_mm3"]))
    lab = np.asarray(labels.dataobj)
    ids = {int(r["lesion_id"]) for r in read(reported / "lesions.csv") if r["case_id"] == "P01_T1"}
    assert lab.max() == max(ids) == len(ids)
    pieces: dict[int, list] = {}
    for r in read(reported / "lesions.csv"):
        if r["case_id"] == "P01_T1":
            pieces.setdefault(int(r["lesion_id"]), []).append(r)
    assert any(len(p) > 1 for p in pieces.values())  # the spine crosses T12/L1: two pieces
    for lid, rows in pieces.items():  # each label has its pieces' voxels
        idx = np.argwhere(lab == lid)
        assert len(idx) == sum(int(r["n_voxels"]) for r in rows)
        if len(rows) == 1:  # and a lesion in one region has its centroid, in RAS
            r = rows[0]
            ras = labels.affine @ np.r_[idx.mean(axis=0), 1]
            assert np.allclose([-ras[0], -ras[1], ras[2]],
                               [float(r["centroid_x_mm"]), float(r["centroid_y_mm"]),
                                float(r["centroid_z_mm"])], atol=1e-6)


def test_identity_stays_out_of_tables_reports_and_masks_unless_asked(reported, sample_data,
                                                                     tmp_path):
    name = "Phantom^Digital"
    for f in list(reported.glob("*.csv")) + list(reported.glob("cases/*/report.html")):
        assert name not in f.read_text() and "Digital Phantom" not in f.read_text(), f
    assert name.encode() not in (reported / "cases" / "P01_T1" / "calcium_mask.nii.gz").read_bytes()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("report:\n  enabled: true\n  identity: full\n  pdf: false\n"
                   "  dicom_seg: false\n  dicom_sr: false\n  nifti: false\n")
    m = tmp_path / "m.csv"
    m.write_text(f"case_id,path\nA,{sample_data / 'P03' / 'dicom'}\n")
    res = CliRunner().invoke(app, ["run", str(m), "--out", str(tmp_path / "o"), "-c", str(cfg),
                                   "-j", "1"], catch_exceptions=False)
    assert res.exit_code == 0
    shown = (tmp_path / "o" / "cases" / "A" / "report.html").read_text()
    assert "Digital Phantom" in shown  # the DICOM person name as people write it


@needs_dciodvfy
@pytest.mark.parametrize("name", ["scores.sr.dcm", "calcium.seg.dcm"])
def test_dicom_results_pass_dciodvfy(reported, name):
    assert dciodvfy.problems(reported / "cases" / "P01_T1" / name) == []


@pytest.mark.skipif(CHROMIUM is None,
                    reason="Chromium (Debian chromium) is not installed; .ci/run installs it")
def test_report_in_a_real_browser(reported):
    pw = pytest.importorskip("playwright.sync_api")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1200})
            console = []
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: console.append(("pageerror", str(e))))
            page.goto((reported / "cases" / "P01_T1" / "report.html").as_uri())
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
            assert len(images) == 4 and all(ok and w > 0 for _, ok, w in images), images
            assert "Agatston" in page.inner_text("body")
            page.screenshot(path=str(ARTEFACTS / "report_P01_T1.png"), full_page=True)
            page.goto((reported / "index.html").as_uri())
            first = page.inner_text("#t tbody tr:first-child td:first-child")
            page.click("th:nth-child(5)")  # sort by agatston (case, patient, status, scope)
            page.click("th:nth-child(5)")
            after = page.inner_text("#t tbody tr:first-child td:first-child a")
            assert (first, after) != ("", "") and after == "P01_T2"  # the largest score
            page.fill("#ft", "P03")  # the text filter leaves one case
            shown = page.evaluate("Array.from(document.querySelectorAll('#t tbody tr'))"
                                  ".filter(r => r.style.display !== 'none').length")
            assert shown == 1
            page.screenshot(path=str(ARTEFACTS / "index.png"), full_page=True)
            page.goto((reported / "patients" / "PHANTOM-01" / "report.html").as_uri())
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
            assert len(images) == 1 and all(ok and w > 0 for _, ok, w in images), images
            body = page.inner_text("body")
            assert "P01_T1" in body and "P01_T2" in body and "Hokanson" in body
            page.screenshot(path=str(ARTEFACTS / "patient_PHANTOM-01.png"), full_page=True)
            errors = [c for c in console if c[0] in ("error", "pageerror")]
            assert errors == []
        finally:
            browser.close()
    assert (ARTEFACTS / "report_P01_T1.png").stat().st_size > 10_000


@pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
                    reason="poppler-utils (pdftoppm, pdftotext) not installed; .ci/run installs it")
def test_pdf_pages_and_text(reported, tmp_path):
    pdf = reported / "cases" / "P01_T1" / "report.pdf"
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "page")],
                   check=True, timeout=120)
    pages = sorted(tmp_path.glob("page*.png"))
    assert 1 <= len(pages) <= 4
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True,
                          check=True, timeout=120).stdout.decode("utf-8")
    words = " ".join(text.split())  # the PDF breaks lines anywhere
    for needle in ("Vascular calcification report", "P01_T1",
                   "Vascular calcium, LAD + aorta: sum of the territories' Agatston scores 345",
                   "No coronary risk category: the scope is not coronary"):
        assert needle in words
    assert "CAC-DRS A" not in text and "risk category 0" not in text  # vascular: no risk
    assert "no risk category, CAC-DRS or MESA risk (defined for coronary calcium only)" in words
    for n in range(1, len(pages) + 1):  # every page names the case and says which of how many
        page = subprocess.run(["pdftotext", "-f", str(n), "-l", str(n), "-enc", "UTF-8", str(pdf),
                               "-"], capture_output=True, check=True, timeout=120).stdout.decode()
        assert f"case P01_T1, page {n} of {len(pages)}" in " ".join(page.split()), n


def test_masks_hold_exactly_the_scored_calcium_under_other_thresholds_and_scopes(
        sample_data, tmp_path):
    """With bone removed and a threshold from a kVp table (140 HU, not 130), the NIfTI mask,
    the label map and the SEG hold the scored voxels: not the config's 130 HU default set."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scoring:\n  scope: bone_excluded\n  kvp_table: {100: [140, 200, 300, 400]}\n"
                   "  kvp_select: 100\nreport:\n  enabled: true\n  pdf: false\n")
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["run", str(sample_data / "P01_T1" / "dicom"), "--out",
                                   str(out), "-c", str(cfg), "-j", "1", "-q"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    row = next(iter(scans(out).values()))
    assert row["threshold_hu"] == "140.0" and row["scope"] == "bone_excluded"
    case = next((out / "cases").iterdir())
    mask = nib.load(case / "calcium_mask.nii.gz")
    voxel_mm3 = float(np.prod(mask.header.get_zooms()))
    assert int(np.asarray(mask.dataobj).sum()) * voxel_mm3 == pytest.approx(
        float(row["volume_mm3"]))
    assert int(np.asarray(nib.load(case / "lesion_labels.nii.gz").dataobj).max()) == int(
        row["n_lesions"])
    import pydicom

    seg = pydicom.dcmread(case / "calcium.seg.dcm")
    assert int(np.count_nonzero(seg.pixel_array)) * voxel_mm3 == pytest.approx(
        float(row["volume_mm3"]))


def _pdf_layout(pdf: Path, work: Path) -> tuple[list[tuple[float, float]], list[dict]]:
    """Pages (width, height) and image placements of a PDF, from poppler's pdftohtml."""
    import xml.etree.ElementTree as ET

    work.mkdir(parents=True, exist_ok=True)
    xml = subprocess.run(["pdftohtml", "-xml", "-stdout", "-q", str(pdf), "doc"], cwd=work,
                         capture_output=True, check=True, timeout=120).stdout
    root = ET.fromstring(xml)
    pages, images = [], []
    for page in root.iter("page"):
        pages.append((float(page.get("width")), float(page.get("height"))))
        for img in page.iter("image"):
            images.append({k: float(img.get(k)) for k in ("top", "left", "width", "height")}
                          | {"page": len(pages)})
    return pages, images


@pytest.mark.skipif(shutil.which("pdftohtml") is None,
                    reason="poppler-utils (pdftohtml) not installed; .ci/run installs it")
def test_every_pdf_image_lies_inside_its_page(reported, tmp_path):
    for case in sorted((reported / "cases").iterdir()):
        pages, images = _pdf_layout(case / "report.pdf", tmp_path / case.name)
        assert 1 <= len(pages) <= 4, case.name
        n_png = len(list(case.glob("key_image_*.png"))) + (case / "mip.png").exists()
        assert len(images) == n_png, case.name  # every image placed, none lost
        for im in images:
            w, h = pages[im["page"] - 1]
            assert 0 <= im["left"] and im["left"] + im["width"] <= w, (case.name, im)
            assert 0 <= im["top"] and im["top"] + im["height"] <= h, (case.name, im)
    for patient in sorted((reported / "patients").iterdir()):
        pages, images = _pdf_layout(patient / "report.pdf", tmp_path / patient.name)
        for im in images:
            w, h = pages[im["page"] - 1]
            assert im["left"] + im["width"] <= w and im["top"] + im["height"] <= h


def test_every_report_field_is_filled_or_says_why(reported):
    """No bare placeholder in any case report: every table cell of the case, result and scan
    tables holds a value or the reason it has none (P04: no height or weight, no calcium)."""
    import re

    for case in sorted((reported / "cases").iterdir()):
        text = (case / "report.html").read_text()
        head = text.split("<h2>Key images</h2>")[0]  # case, result, regions and scan tables
        cells = re.findall(r"<td>(.*?)</td>", head, flags=re.S)
        assert cells and all(c.strip() not in ("", "-") for c in cells), (case.name, cells)
        assert "For research use only" in text and "config sha256" in text
    p01 = (reported / "cases" / "P01_T1" / "report.html").read_text()
    # each key image says which slice: its number of N, its InstanceNumber, its z
    assert re.search(r'alt="slice \d+ of 40 \(instance \d+, z -?\d+\.\d mm\)', p01)
    p04 = (reported / "cases" / "P04" / "report.html").read_text()
    assert "not computed: missing: no height and weight" in p04
    assert "No calcium was found" in p04 and "maximum intensity projection" not in p04


def test_a_case_rescored_keeps_no_artefact_of_its_earlier_result(sample_data, tmp_path):
    """Scored again with fewer key images, the folder holds only the new result's artefacts."""
    runner = CliRunner()
    series = sample_data / "P01_T1" / "dicom"
    for n in (3, 1):
        cfg = tmp_path / f"k{n}.yaml"
        cfg.write_text(f"report: {{enabled: true, key_images: {n}, pdf: {str(n == 3).lower()}}}\n")
        res = runner.invoke(app, ["run", str(series), "--out", str(tmp_path / "o"), "-c",
                                  str(cfg), "-j", "1"], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        (case,) = (tmp_path / "o" / "cases").iterdir()
        assert sorted(p.name for p in case.glob("key_image_*.png")) == [
            f"key_image_{i + 1}.png" for i in range(n)]
        assert (case / "report.pdf").exists() == (n == 3)  # the first run's PDF is gone


def artery_cells(text: str) -> dict[str, list[str]]:
    """The per-artery table of a report: artery -> its cells (Agatston, volume, lesions)."""
    m = re.search(r"<th>Coronary artery</th>.*?</table>", text, flags=re.S)
    if m is None:
        return {}
    rows = re.findall(r"<tr>(.*?)</tr>", m.group(0), flags=re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r, flags=re.S) for r in rows]
    return {c[0]: c[1:] for c in cells if c}


def test_the_per_artery_table_equals_regions_csv(reported):
    """P01 has an LAD mask: the report's coronary table shows it as regions.csv has it, in
    whole Agatston, and says the left main was not assessed (no LM region)."""
    from vascalc.outputs.arteries import whole

    text = (reported / "cases" / "P01_T1" / "report.html").read_text()
    lad = next(r for r in read(reported / "regions.csv")
               if r["case_id"] == "P01_T1" and r["region"] == "LAD")
    assert artery_cells(text) == {"LAD": [whole(lad["agatston"]), f"{float(lad['volume_mm3']):,.1f}",
                                          str(int(lad["n_lesions"]))]}
    assert "Left main: not assessed" in text
    p04 = (reported / "cases" / "P04" / "report.html").read_text()
    assert artery_cells(p04) == {}  # no coronary region: no table


@pytest.mark.skipif(CHROMIUM is None,
                    reason="Chromium (Debian chromium) is not installed; .ci/run installs it")
def test_the_index_fits_1280_px_with_a_failed_case_and_sorts(sample_data, tmp_path):
    """A failed row shows its error code and message across the score columns: at 1280 px
    the table needs no horizontal scroll and the message is on screen; sorting a score column
    with a failed row in it raises no script error."""
    pw = pytest.importorskip("playwright.sync_api")
    manifest = tmp_path / "m.csv"
    manifest.write_text("case_id,path,regions\n"
                        f"P01_T1,{sample_data / 'P01_T1' / 'dicom'},{sample_data / 'P01_T1' / 'regions'}\n"
                        f"P09,{tmp_path / 'missing'},\n")
    res = CliRunner().invoke(app, ["run", str(manifest), "--out", str(tmp_path / "o"), "-c",
                                   "sample_data", "-j", "1", "-q"], catch_exceptions=False)
    assert res.exit_code == 1, res.output  # one case failed, the other written
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((tmp_path / "o" / "index.html").as_uri())
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            box = page.locator("td.err").bounding_box()
            assert box is not None and box["x"] + box["width"] <= 1280
            assert "INPUT_INVALID" in page.inner_text("td.err")
            page.click("th:nth-child(5)")
            page.click("th:nth-child(5)")
            assert errors == []
        finally:
            browser.close()


def test_a_result_written_again_keeps_its_dicom_uids(sample_data, tmp_path):
    """The SR and SEG of one result have the same UIDs when written again (--force): a PACS
    that receives them twice keeps them once."""
    series = sample_data / "P01_T1" / "dicom"
    uids = []
    for _ in range(2):
        res = CliRunner().invoke(app, ["run", str(series), "--out", str(tmp_path / "o"), "--report",
                                       "--force", "-j", "1"], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        (case,) = (tmp_path / "o" / "cases").iterdir()
        uids.append([(str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID)) for ds in (
            pydicom.dcmread(case / n, stop_before_pixels=True)
            for n in ("scores.sr.dcm", "calcium.seg.dcm"))])
    assert uids[0] == uids[1] and len({u for pair in uids[0] for u in pair}) == 4
