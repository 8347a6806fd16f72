"""A micro-CT VOI label map (the regions drawn in 3D Slicer or CTAn), read in slabs beside its
stack: a NIfTI (sliced through nibabel's array proxy, never loaded whole), an NRRD/MHA, or a
TIFF label stack or slice folder. Its label names come from a table beside it (stem.json or
stem.yaml: ``{value: name}``) or from the config (``microct.voi_labels``); a value without a
name is ``label_<value>``. The map must have the stack's shape (the same voxels)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RegionError
from ..values import safe_yaml
from .microct import MicroCTStack, open_microct
from .nifti import is_nifti, nifti_stem


def _table(p: Path) -> dict[int, str]:
    stem = nifti_stem(p) if is_nifti(p) else p.stem
    for ext in (".json", ".yaml", ".yml"):
        t = p.with_name(stem + ext)
        if t.is_file():
            try:
                doc = safe_yaml(t.read_text(encoding="utf-8"))
                return {int(k): str(v) for k, v in dict(doc).items()}
            except (OSError, TypeError, ValueError) as err:
                raise RegionError(f"the label table is not a mapping of value to name ({err})",
                                  path=str(t)) from None
    return {}


def open_voi(path: str | Path, stack: MicroCTStack, *, names: dict[int, str] | None = None,
             ) -> tuple[Callable[[int, int], np.ndarray], dict[int, str]]:
    """(read(first, stop) -> integer labels of those slices, label names) of the VOI map at
    ``path``, checked to lie on ``stack``'s voxels."""
    p = Path(path)
    if not p.exists():
        raise RegionError("does not exist", path=str(p), hint="fix the VOI path")
    table = {**(names or {}), **_table(p)}
    if p.is_file() and is_nifti(p):
        import nibabel as nib  # lazy

        try:
            img: Any = nib.load(str(p))  # a Nifti1Image
            proxy = img.dataobj
            shape = tuple(int(s) for s in img.shape[:3])  # (x, y, z)
        except Exception as err:  # noqa: BLE001 - nibabel raises many kinds
            raise RegionError(f"not a readable NIfTI label map ({err})", path=str(p)) from None
        zyx = (shape[2], shape[1], shape[0])

        def read(a: int, b: int) -> np.ndarray:
            return np.asarray(proxy[:, :, a:b]).transpose(2, 1, 0)
    else:
        voi = open_microct(p, voxel_size_um=stack.voxel_size_um[2])
        zyx = voi.shape

        def read(a: int, b: int) -> np.ndarray:
            return voi.read(a, b)
    if tuple(zyx) != tuple(stack.shape):
        raise RegionError(f"the VOI map has {zyx[2]} x {zyx[1]} x {zyx[0]} voxels, the stack "
                          f"{stack.shape[2]} x {stack.shape[1]} x {stack.shape[0]}",
                          path=str(p), hint="draw the VOI on this stack (same voxels)")

    def checked(a: int, b: int) -> np.ndarray:
        lab = read(a, b)
        if lab.dtype.kind == "f":
            if not np.all(lab == np.round(lab)):
                raise RegionError("the VOI map holds non-integer values: not a label map",
                                  path=str(p))
            lab = lab.astype(np.int64)
        if lab.dtype.kind not in "iub" or (lab.size and lab.min() < 0):
            raise RegionError("a VOI label map holds non-negative integers", path=str(p))
        return lab

    return checked, table
