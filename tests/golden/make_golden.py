"""Write the golden tables: ``python -m tests.golden.make_golden`` (the only writer of them).

Each named run scores inputs through the public command (``vascalc run``) and keeps the tables
a user reads (scans, regions, lesions, discovery, data dictionary) under tests/golden/<name>/.
tests/test_golden.py reruns the same and compares byte for byte, so a refactoring that changes
any number, column or row fails. Runs on ../shared/data are written only where it is present.
Rewrite them only for a change whose new numbers you have checked against the definition.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

from typer.testing import CliRunner
from vascalc import __version__

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TABLES = ("scans.csv", "regions.csv", "lesions.csv", "regions_wide.csv", "regions_masks.csv",
          "discovery.csv", "data_dictionary.csv")


def runs(phantoms: Path, shared: Path,
         contrast: Path | None = None) -> dict[str, tuple[list[str], Path | None]]:
    """name -> (arguments after `vascalc run`, the data the run needs or None). ``contrast``
    is the contrast sample data (sample_data.contrast), by default beside ``phantoms``."""
    cfg = ROOT / "configs"
    manifest = str(phantoms / "manifest.csv")
    contrast = contrast or phantoms.parent / "contrast_phantoms"
    return {
        "sample_default": ([manifest], None),
        "sample_data_config": ([manifest, "--config", str(cfg / "sample_data.yaml")], None),
        "sample_aortic": ([manifest, "--config", str(cfg / "aortic.yaml")], None),
        "sample_coronary": ([manifest, "--config", str(cfg / "coronary.yaml")], None),
        "sample_low_kvp": ([manifest, "--config", str(cfg / "low_kvp.yaml")], None),
        "sample_tree": ([str(phantoms)], None),
        "sample_philips": ([manifest, "--config", str(HERE / "philips.yaml")], None),
        "sample_coronary_scope": ([manifest, "--config", str(HERE / "coronary_scope.yaml")], None),
        "sample_reader": ([manifest, "--config", str(cfg / "sample_data.yaml")], None),
        "sample_contrast": ([str(contrast / "manifest.csv"), "--config",
                             str(HERE / "contrast.yaml")], None),
        "shared_dcm_qa_ct": ([str(shared / "dcm_qa_ct" / "In")], shared / "dcm_qa_ct"),
        "shared_totalseg_ct": ([str(shared / "totalsegmentator_example" / "example_ct_dicom")],
                               shared / "totalsegmentator_example"),
    }


#: runs whose tables are rescored from scripted reads after the run (vascalc rescore):
#: (reader, case, lesion, slice or None, label), applied in order
READS: dict[str, list[tuple[str, str, int, int | None, str]]] = {
    "sample_reader": [
        ("r1", "P02", 1, None, "bone"), ("r1", "P02", 2, None, "LAD"),
        ("r1", "P02", 3, None, "LAD"), ("r1", "P02", 3, 9, "LM"), ("r1", "P02", 4, None, "RCA"),
        ("r1", "P02", 5, None, "LCX"), ("r1", "P02", 6, None, "noise"),
        ("r1", "P02", 7, None, "aorta"), ("r1", "P02", 8, None, "RCA"),
        ("r1", "P02", 8, None, "aortic_valve"),  # a relabel: the newest read counts
        ("r1", "P03", 1, None, "LAD"), ("r1", "P03", 2, None, "mitral_annulus"),
    ],
}


def score(args: list[str], out: Path, name: str = "") -> None:
    """One `vascalc run` in this process, serial, no reports (they are not tables)."""
    from vascalc.cli.app import app

    res = CliRunner().invoke(app, ["run", *args, "--out", str(out), "--jobs", "1",
                                   "--no-report", "--quiet"], catch_exceptions=False)
    if res.exit_code not in (0, 1):
        raise RuntimeError(f"vascalc run {' '.join(args)} exited {res.exit_code}: {res.output}")
    if ",INTERNAL," in (out / "scans.csv").read_text():
        raise RuntimeError(f"vascalc run {' '.join(args)}: a case failed with a bug (INTERNAL); "
                           "golden tables are never written from a bug")
    if name in READS:
        from vascalc.review.scripted import write_reads

        # finished reads only; what they leave unlabelled (P02's aortic specks) confirmed
        # not coronary, as a reader confirms it on the review page
        finished = sorted({(r[0], r[1]) for r in READS[name]})
        write_reads(out, READS[name], done=finished, rest_not_coronary=finished)
        res = CliRunner().invoke(app, ["rescore", str(out), "--quiet"], catch_exceptions=False)
        if res.exit_code != 0:
            raise RuntimeError(f"vascalc rescore {out} exited {res.exit_code}: {res.output}")


def normalised(text: str, roots: dict[str, Path]) -> str:
    """The table text with each input root replaced by a token (error texts name files),
    vascalc's version (pipeline_version) by $VERSION and UTC times (a reader's confirmation)
    by $TIME, so a release or a rerun changes no golden table."""
    for token, root in roots.items():
        text = text.replace(str(root), token)
    # when a reader confirmed the unlabelled calcium (rest_confirmed_at): the time of the run
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?\+00:00", "$TIME", text)
    return re.sub(rf"(?<=,){re.escape(__version__)}(?=,|\r?$)", "$VERSION", text,
                  flags=re.MULTILINE)


def main() -> int:
    from sample_data import contrast
    from sample_data.generate import generate

    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    with tempfile.TemporaryDirectory() as tmp:
        phantoms = Path(tmp) / "phantoms"
        generate(phantoms)
        contrast.generate(Path(tmp) / "contrast_phantoms")
        for name, (args, needs) in runs(phantoms, shared).items():
            if needs is not None and not needs.exists():
                print(f"skip {name}: {needs} is absent")
                continue
            out = Path(tmp) / name
            score(args, out, name)
            dest = HERE / name
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            roots = {"$CONTRAST": Path(tmp) / "contrast_phantoms", "$PHANTOMS": phantoms,
                     "$SHARED": shared}
            for t in TABLES:
                (dest / t).write_text(normalised((out / t).read_text(), roots))
            print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
