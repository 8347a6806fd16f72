"""A light start: ``vascalc --version`` loads nothing of the package but its version, and a run
that writes no reports loads none of the report, cohort or DICOM-networking stacks (DESIGN.md,
'A run imports only what its job needs')."""

from __future__ import annotations

import subprocess
import sys

#: what a run without reports must not load
HEAVY = ("pandas", "statsmodels", "matplotlib", "jinja2", "weasyprint", "highdicom",
         "pynetdicom")


def _modules_after(argv: list[str], entry: str = "vascalc.cli.app") -> set[str]:
    code = (f"import sys\nsys.argv = {argv!r}\nfrom {entry} import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    return set(res.stderr.split())


def test_version_loads_only_the_version():
    mods = _modules_after(["vascalc", "--version"], entry="vascalc.cli.entry")
    ours = {m for m in mods if m.startswith("vascalc")}
    assert ours == {"vascalc", "vascalc._version", "vascalc.errors", "vascalc.cli",
                    "vascalc.cli.entry"}, ours
    assert not {"numpy", "pydantic", "typer"} & mods


def test_a_run_without_reports_loads_no_report_stack(sample_data, tmp_path):
    mods = _modules_after(["vascalc", "run", str(sample_data / "P03" / "dicom"), "--out",
                           str(tmp_path / "o"), "-j", "1"])
    assert "vascalc.run.batch" in mods, "the run did not start: the check would hold vacuously"
    assert (tmp_path / "o" / "scans.csv").is_file()
    assert not set(HEAVY) & mods, sorted(set(HEAVY) & mods)
