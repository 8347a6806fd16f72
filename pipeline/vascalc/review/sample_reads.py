"""Sample reads for the demo: a made-up reader's labels (``sample_reads.csv`` of the sample
data) applied to a finished run through the review API, exactly as a reader's browser sends
them, then marked done and rescored, so that ``vascalc demo`` shows the final coronary report
a review gives. The reader is named ``sample-reads`` wherever the reads show (tables, reports,
SR), so they are never taken for a person's.

Each lesion of a case is given the label of the sample point nearest its voxel-weighted
centroid (patient coordinates, mm), within ``MAX_DISTANCE_MM``; a lesion with no point that
near stays unlabelled.
"""

from __future__ import annotations

import csv
import json
import math
import threading
import urllib.request
from pathlib import Path
from typing import Any

from ..results.document import lesion_rows_of, read_result

READER = "sample-reads"
MAX_DISTANCE_MM = 40.0


def _centroids(doc: dict[str, Any]) -> dict[int, tuple[float, float, float]]:
    acc: dict[int, list[float]] = {}
    for r in lesion_rows_of(doc):
        n = float(r["n_voxels"])
        a = acc.setdefault(int(r["lesion_id"]), [0.0, 0.0, 0.0, 0.0])
        a[0] += n
        for i, k in enumerate(("centroid_x_mm", "centroid_y_mm", "centroid_z_mm"), start=1):
            a[i] += n * float(r[k])
    return {lid: (a[1] / a[0], a[2] / a[0], a[3] / a[0]) for lid, a in acc.items() if a[0]}


def plan(out: Path, reads_csv: Path) -> dict[str, dict[int, str]]:
    """case -> lesion -> label, from the sample points."""
    points: dict[str, list[tuple[str, tuple[float, float, float]]]] = {}
    with open(reads_csv, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            points.setdefault(row["case_id"], []).append(
                (row["label"], (float(row["x_mm"]), float(row["y_mm"]), float(row["z_mm"]))))
    labels: dict[str, dict[int, str]] = {}
    for case_id, pts in points.items():
        path = Path(out) / "cases" / case_id / "result.json"
        if not path.is_file():
            continue
        for lid, c in _centroids(read_result(path)).items():
            label, where = min(pts, key=lambda p: math.dist(p[1], c))
            if math.dist(where, c) <= MAX_DISTANCE_MM:
                labels.setdefault(case_id, {})[lid] = label
    return labels


def apply_sample_reads(out: Path, reads_csv: Path) -> list[str]:
    """Label, mark done and rescore the sample-read cases of a run; returns the cases."""
    from .rescore import rescore  # lazy: the case path, only for the demo's reads
    from .server import ReviewApp, make_server  # lazy: the review server, only for the demo

    labels = plan(out, reads_csv)
    if not labels:
        return []
    app = ReviewApp(out, reader=READER)
    server = make_server(app, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for case_id, plan_of in labels.items():
            for lid, label in sorted(plan_of.items()):
                _put(base, f"/api/cases/{case_id}/lesions/{lid}", {"label": label}, app.token)
            _put(base, f"/api/cases/{case_id}/done", {"done": True}, app.token)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    rescore(out, reader=READER)
    return sorted(labels)


def _put(base: str, path: str, body: dict[str, Any], token: str) -> None:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="PUT",
                                 headers={"X-Vascalc-Token": token})
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (loopback)
        resp.read()
