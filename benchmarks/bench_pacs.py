"""What the DICOM node adds to scoring, as a difference within one run.

    .venv/bin/python benchmarks/bench_pacs.py [--slices 300] [--quiet 0.5]

Writes a synthetic 512 x 512 CT series of N slices, then, in this process:

- run:  the series scored as ``vascalc run --report`` scores it (run_batch, reports, SEG, SR),
        into a fresh folder, after one warm-up run: the baseline;
- node: the series sent by C-STORE to a ``vascalc listen`` node (vascalc.pacs.node.Node), which
        sends its results to a small C-STORE SCP here; timed from the last C-STORE's
        acknowledgement to the SR's arrival at that SCP.

Prints both and the difference, quiet period aside: what the node adds (store, ranking, the
PDF and summary objects, the outbox, the C-STORE back).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))


def write_series(folder: Path, slices: int) -> list[Path]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for k in range(slices):
        img = rng.normal(40, 12, (512, 512)).astype(np.int16)
        img[:10, :10] = -1000
        if k % 20 == 5:
            img[250:256, 250:256] = 450
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame
        ds.PatientName, ds.PatientID, ds.Modality = "BENCH^PACS", "BENCH", "CT"
        ds.StudyDate, ds.SeriesDescription, ds.SliceThickness = "20260101", "CaScore", 3.0
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [0.0, 0.0, 3.0 * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.InstanceNumber = [0.7, 0.7], k + 1
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.KVP = 1, 0, 120
        ds.PixelData = img.tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, \
            ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        path = folder / f"{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--quiet", type=float, default=0.5)
    args = ap.parse_args()
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import CTImageStorage
    from vascalc.config.schema import Config
    from vascalc.pacs.node import Node
    from vascalc.pacs.send import parse_destination
    from vascalc.run.batch import run_batch
    from vascalc.run.discovery import collect_cases
    from vascalc.run.options import RunOptions

    tmp = Path(tempfile.mkdtemp(prefix="bench-pacs-"))
    files = write_series(tmp / "series", args.slices)
    cfg = Config(report={"enabled": True}, listen={"quiet_s": args.quiet})

    cases, notes = collect_cases([tmp / "series"], cfg, work_dir=tmp / "w")
    run_batch(cases, cfg, tmp / "warm", RunOptions(), notes=notes)  # imports and caches warm
    t = time.perf_counter()
    cases, notes = collect_cases([tmp / "series"], cfg, work_dir=tmp / "w")
    run_batch(cases, cfg, tmp / "run", RunOptions(), notes=notes)
    t_run = time.perf_counter() - t

    arrived: dict[str, float] = {}

    def sink(event):
        arrived.setdefault(str(event.dataset.Modality), time.perf_counter())
        return 0x0000

    sink_ae = AE(ae_title="SINK")
    sink_ae.add_supported_context("1.2.840.10008.5.1.4.1.1.88.34")
    for uid in ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.104.1",
                "1.2.840.10008.5.1.4.1.1.7"):
        sink_ae.add_supported_context(uid)
    sink_port, node_port = free_port(), free_port()
    server = sink_ae.start_server(("127.0.0.1", sink_port), block=False,
                                  evt_handlers=[(evt.EVT_C_STORE, sink)])
    node = Node(tmp / "node", ae_title="VASCALC", port=node_port,
                destinations=[parse_destination(f"SINK@127.0.0.1:{sink_port}")],
                allow=["BENCH"], config=cfg)
    node.start()
    loop = threading.Thread(target=node.serve, kwargs={"poll_s": 0.05}, daemon=True)
    loop.start()
    import pydicom

    scu = AE(ae_title="BENCH")
    scu.add_requested_context(CTImageStorage)
    assoc = scu.associate("127.0.0.1", node_port, ae_title="VASCALC")
    for f in files:
        assoc.send_c_store(pydicom.dcmread(f))
    t_last = time.perf_counter()
    assoc.release()
    while "SR" not in arrived and time.perf_counter() - t_last < 300:
        time.sleep(0.01)
    node.stop()
    server.shutdown()
    t_node = arrived["SR"] - t_last
    print(f"{args.slices} slices of 512 x 512; quiet period {args.quiet} s")
    print(f"vascalc run --report (in process)        {t_run:7.2f} s")
    print(f"node: last C-STORE -> SR acknowledged     {t_node:7.2f} s")
    print(f"what the node adds (quiet period aside)  {t_node - args.quiet - t_run:7.2f} s")


if __name__ == "__main__":
    main()
