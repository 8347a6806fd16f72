"""#26: the review page a reader can work in: zoom (Ctrl+wheel) and pan (drag) with clicks
still landing on the voxel under the cursor, a crosshair with the HU under it, filters by
label, size and slice, sorting by any column, outlines seen on bone, and the case selector's
progress updated as lesions are labelled."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from tests.test_reports import reported  # noqa: F401 - a fixture, under out
from tests.test_review import call, lesion_ids, out, start_server, stop  # noqa: F401 - out: fixture

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None,
                    reason="Chromium (Debian chromium) is not installed; .ci/run installs it")
def test_zoom_pan_crosshair_filters_sort_and_progress(out):  # noqa: F811 - the fixture
    pw = pytest.importorskip("playwright.sync_api")
    from tests.test_reports import BROWSER_ARGS

    proc, base, tok = start_server(out)
    try:
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            console = []
            page.on("pageerror", lambda e: console.append(("pageerror", str(e))))
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.goto(f"{base}/?token={tok}")
            page.wait_for_selector("#lesions tbody tr")
            names = page.eval_on_selector_all("#case option", "os => os.map(o => o.textContent)")
            i = next(i for i, n in enumerate(names) if n.startswith("P02 "))
            page.select_option("#case", index=i)
            n = len(lesion_ids(out, "P02"))
            page.wait_for_function(f"document.querySelector('#f-count').textContent === '{n} of {n}'")
            assert page.eval_on_selector_all("#case option", "os => os.map(o => o.textContent)")[
                i].startswith(f"P02 (0/{n})")
            # the selector's progress follows the labels ('accept suggestions' labels many)
            page.click("#accept")
            page.wait_for_function(
                f"!document.querySelectorAll('#case option')[{i}].textContent.startsWith('P02 (0/')")
            done = int(re.search(r"\((\d+)/", page.eval_on_selector_all(
                "#case option", "os => os.map(o => o.textContent)")[i]).group(1))
            labelled = sum(1 for le in json.loads(call(base, "GET", "/api/cases/P02/lesions",
                                                       token=tok)[1]) if le["label"])
            assert done == labelled > 0
            # filters: unlabelled only, a minimum Agatston, this slice; sorting by a column
            page.select_option("#f-label", "-")
            left = n - labelled
            page.wait_for_function(f"document.querySelector('#f-count').textContent === '{left} of {n}'")
            page.select_option("#f-label", "")
            agatston = sorted(le["agatston"] for le in json.loads(
                call(base, "GET", "/api/cases/P02/lesions", token=tok)[1]))
            cut = agatston[len(agatston) // 2]
            page.fill("#f-min", str(cut))
            want = sum(1 for a in agatston if a >= cut)
            page.wait_for_function(f"document.querySelector('#f-count').textContent === '{want} of {n}'")
            page.fill("#f-min", "0")
            page.click("#lesions th[data-sort='agatston']")
            page.click("#lesions th[data-sort='agatston']")  # descending
            first = float(page.inner_text("#lesions tbody tr:first-child td:nth-child(3)"))
            assert first == pytest.approx(agatston[-1], abs=0.006)
            page.check("#f-slice")
            k = int(page.inner_text("#slice-info").split()[1]) - 1
            on = sum(1 for le in json.loads(call(base, "GET", "/api/cases/P02/lesions",
                                                 token=tok)[1]) if k in le["slices"])
            page.wait_for_function(f"document.querySelector('#f-count').textContent === '{on} of {n}'")
            page.uncheck("#f-slice")
            # zoom about the cursor with Ctrl+wheel: the voxel under it stays under it
            shape = json.loads(call(base, "GET", "/api/cases/P02", token=tok)[1])["shape"]
            ids = np.frombuffer(call(base, "GET", f"/api/cases/P02/lesionmap/{k}", token=tok)[1],
                                "<i4").reshape(shape[1:])
            lid = int(ids[ids > 0][0])
            r, c = (int(v) for v in np.argwhere(ids == lid)[0])

            def at(box):
                return (box["x"] + (c + 0.5) / shape[2] * box["width"],
                        box["y"] + (r + 0.5) / shape[1] * box["height"])

            before = page.locator("#img").bounding_box()
            x, y = at(before)
            page.mouse.move(x, y)
            page.keyboard.down("Control")
            for _ in range(4):
                page.mouse.wheel(0, -100)
            page.keyboard.up("Control")
            zoomed = page.locator("#img").bounding_box()
            assert zoomed["width"] > 2 * before["width"]
            assert at(zoomed) == pytest.approx((x, y), abs=2)
            assert float(page.inner_text("#zoom-info").split()[1].rstrip("\u00d7")) > 2
            assert int(page.inner_text("#slice-info").split()[1]) - 1 == k  # no slice change
            # pan by dragging
            page.mouse.down()
            page.mouse.move(x + 60, y + 30, steps=5)
            page.mouse.up()
            panned = page.locator("#img").bounding_box()
            assert panned["x"] == pytest.approx(zoomed["x"] + 60, abs=2)
            assert panned["y"] == pytest.approx(zoomed["y"] + 30, abs=2)
            # a click under zoom selects the lesion under the cursor; the crosshair reads HU
            x, y = at(panned)
            page.mouse.move(x, y)
            page.mouse.click(x, y)
            page.wait_for_function("document.querySelector('#slice-info').textContent"
                                   f".includes('lesion {lid} selected')")
            hu = np.frombuffer(call(base, "GET", f"/api/cases/P02/image/{k}", token=tok)[1],
                               "<i2").reshape(shape[1:])
            assert page.inner_text("#cursor-info") == f"x {c + 1}, y {r + 1}: {hu[r, c]} HU"
            assert page.is_visible("#xh-h") and page.is_visible("#xh-v")
            page.click("#fit")
            assert page.locator("#img").bounding_box()["width"] == pytest.approx(before["width"], abs=1)
            assert [e for e in console if e[0] in ("error", "pageerror")] == []
            browser.close()
    finally:
        stop(proc)


@pytest.mark.skipif(CHROMIUM is None,
                    reason="Chromium (Debian chromium) is not installed; .ci/run installs it")
def test_unlabelled_outlines_alternate_black_and_white(sample_data, tmp_path):
    """White outlines of unlabelled lesions vanished on bone: every edge pixel of a lesion
    with no label and no suggestion (a run without region masks) is black or white, both."""
    from typer.testing import CliRunner
    from vascalc.cli.app import app

    pw = pytest.importorskip("playwright.sync_api")
    from tests.test_reports import BROWSER_ARGS

    run_out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(sample_data / "P03" / "dicom"), "--out", str(run_out),
                                   "-j", "1", "-q", "--no-report"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    proc, base, tok = start_server(run_out)
    try:
        cid = json.loads(call(base, "GET", "/api/cases", token=tok)[1])[0]["case_id"]
        lesions = json.loads(call(base, "GET", f"/api/cases/{cid}/lesions", token=tok)[1])
        assert lesions and not any(le["suggestion"] for le in lesions)
        meta = json.loads(call(base, "GET", f"/api/cases/{cid}", token=tok)[1])
        k = meta["lesion_slices"][0]  # the slice the page opens on
        ids = np.frombuffer(call(base, "GET", f"/api/cases/{cid}/lesionmap/{k}", token=tok)[1],
                            "<i4").reshape(meta["shape"][1:])
        inside = ids > 0
        pad = np.pad(ids, 1)
        edge = inside & ((pad[:-2, 1:-1] != ids) | (pad[2:, 1:-1] != ids) |
                         (pad[1:-1, :-2] != ids) | (pad[1:-1, 2:] != ids))
        rows, cols = np.nonzero(edge)
        assert rows.size
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/?token={tok}")
            page.wait_for_function(f"document.querySelector('#slice-info').textContent"
                                   f".startsWith('slice {k + 1} of')")
            pixels = page.evaluate(f"""() => {{
                const c = document.getElementById('img');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                return {json.dumps([[int(r), int(c)] for r, c in zip(rows, cols)])}
                  .map(([r, q]) => Array.from(d.slice(4 * (r * c.width + q), 4 * (r * c.width + q) + 3)));
            }}""")
            browser.close()
        assert {tuple(px) for px in pixels} == {(0, 0, 0), (255, 255, 255)}
    finally:
        stop(proc)
