"""#26: key images a person can read. The circle sits on the lesion's own pixels (on the head
CT the skull ring's centroid is in the brain, where there is no calcium); legends list only
the colours an image shows and are not burned in; the projection is left out in words when
it cannot show anything; the images are at least 400 px wide in a 1280 px window."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from typer.testing import CliRunner
from vascalc.analyse import analyse
from vascalc.cli.app import app
from vascalc.config.schema import Config
from vascalc.outputs import key_images
from vascalc.outputs.artefacts import _patient_ijk, lesion_marker

from tests.conftest import shared_path
from tests.test_bad_inputs import series
from tests.test_reports import BROWSER_ARGS, CHROMIUM, reported  # noqa: F401 - a fixture


def test_the_marker_sits_on_the_lesions_own_pixels_on_the_head_ct():
    from vascalc.io.load import load_ct

    folder = shared_path("dcm_qa_ct", "In", "Philips", "S21570", "S2010")
    vol = load_ct(folder, Config())
    r = analyse(vol, Config(), case_id="head", keep_voxels=True)
    labels = r.voxels.lesion_labels
    boxes = ndimage.find_objects(labels)
    largest = sorted(r.lesions, key=lambda le: -le.volume_mm3)[:3]
    ring_seen = False
    for le in largest:
        k, row, col, radius = lesion_marker(vol, labels, le, boxes[le.lesion_id - 1])
        assert labels[k, int(row), int(col)] == le.lesion_id  # on the lesion, on that slice
        assert 6 < radius <= 31
        _, r0, c0 = _patient_ijk(vol, (le.centroid_x_mm, le.centroid_y_mm, le.centroid_z_mm))
        cr, cc = int(round(r0)), int(round(c0))
        if 0 <= cr < labels.shape[1] and 0 <= cc < labels.shape[2] and labels[k, cr, cc] != le.lesion_id:
            ring_seen = True  # the centroid is off the lesion: the old circle's place
        # the slice is the lesion's largest
        areas = (labels == le.lesion_id).sum(axis=(1, 2))
        assert areas[k] == areas.max()
    assert ring_seen, "the skull's centroid should lie off the skull on the head CT"


def test_legends_list_only_the_colours_an_image_shows():
    col = key_images.territory_colouring(("aorta", "LAD", "vertebrae_L1"),
                                         ("vascular", "coronary", "bone"))
    index = np.zeros((8, 8), dtype=np.int32)
    index[2, 2] = 1 + 1  # aorta (label 1 -> colour index 2)
    assert [n for n, _ in col.shown(index)] == ["aorta"]
    index[3, 3] = 3 + 1  # vertebrae_L1: bone, muted
    assert [n for n, _ in col.shown(index)] == ["aorta", "bone (not vascular)"]
    bands = np.zeros((8, 8), dtype=np.uint8)
    bands[1, 1] = 3
    assert [n for n, _ in key_images.band_legend(bands)] == ["density weight 3"]
    png = key_images.render(np.zeros((8, 8)), index, aspect=1.0, colouring=col)
    assert Image.open(io.BytesIO(png)).size == (600, 600)


def test_a_short_series_gets_no_projection_and_says_why(tmp_path):
    series(tmp_path / "s1")  # 6 slices with a plaque
    cfg = tmp_path / "c.yaml"
    cfg.write_text("report:\n  enabled: true\n  pdf: false\n  dicom_seg: false\n"
                   "  dicom_sr: false\n  nifti: false\n")
    res = CliRunner().invoke(app, ["run", str(tmp_path / "s1"), "--out", str(tmp_path / "o"),
                                   "-c", str(cfg), "-j", "1", "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (case,) = (tmp_path / "o" / "cases").iterdir()
    assert not (case / "mip.png").exists() and (case / "key_image_1.png").exists()
    assert "No projection: the series has 6 slices (fewer than 16)" in (
        case / "report.html").read_text()


@pytest.mark.skipif(CHROMIUM is None,
                    reason="Chromium (Debian chromium) is not installed; .ci/run installs it")
def test_key_images_are_at_least_400_px_wide_at_1280(reported):  # noqa: F811 - the fixture
    pw = pytest.importorskip("playwright.sync_api")
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((reported / "cases" / "P01_T1" / "report.html").as_uri())
            widths = page.evaluate("Array.from(document.querySelectorAll('figure img'))"
                                   ".map(i => i.getBoundingClientRect().width)")
            assert len(widths) == 4 and min(widths) >= 400, widths
            # each legend sits outside its image, below it
            below = page.evaluate("""Array.from(document.querySelectorAll('figure')).map(f => {
                const i = f.querySelector('img').getBoundingClientRect();
                const l = f.querySelector('.legend'); if (!l) return true;
                return l.getBoundingClientRect().top >= i.bottom; })""")
            assert all(below)
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        finally:
            browser.close()


def test_the_projection_is_head_up_with_letters():
    """Slices running feet to head are turned so the head is at the top."""
    mip = np.full((20, 10), -1000.0)
    mip[0, :] = 1000  # slice 0: the feet
    # columns of the direction: slice, row, column axes (axial: +z head, +y posterior, +x left)
    d = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    im = key_images.mip_image(mip, np.zeros((20, 10), dtype=np.int32), (3.0, 1.0, 1.0),
                              direction=d)
    pic = np.asarray(Image.open(io.BytesIO(im.png)).convert("L"))
    column = pic[10:590, 270]  # inside the image, clear of the letters and the scale bar
    rows = np.nonzero(column > 250)[0] + 10
    assert rows.size and rows.min() > 500  # the feet end is drawn at the bottom


def test_a_flat_slab_gets_no_projection_and_the_gating_is_as_the_header_records_it(tmp_path):
    """The Siemens example is 20 slices of 2 mm over a 500 mm field of view: its projection
    would be a 40 mm strip (the issue's '40 px strip with a legend larger than the image')."""
    folder = shared_path("totalsegmentator_example", "example_ct_dicom")
    seg = shared_path("totalsegmentator_example", "example_seg_dicom.nii.gz")
    m = tmp_path / "m.csv"
    m.write_text(f"case_id,path,regions\nS,{folder},{seg}\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("report:\n  enabled: true\n  pdf: false\n  dicom_seg: false\n"
                   "  dicom_sr: false\n  nifti: false\nscoring:\n  contrast: phase_threshold\n"
                   "regions:\n  label_table: totalsegmentator_v2\n")
    res = CliRunner().invoke(app, ["run", str(m), "--out", str(tmp_path / "o"), "-c", str(cfg),
                                   "-j", "1", "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    text = (tmp_path / "o" / "cases" / "S" / "report.html").read_text()
    assert not (tmp_path / "o" / "cases" / "S" / "mip.png").exists()
    assert "the series covers 40 mm along the body over a 500 mm field of view" in text
    assert "ECG gating</th><td>not recorded in the header" in text
