"""The shape of each 3-D lesion in physical units (``output.lesion_shape``): how long, wide and
thick it is and whether it is linear, sheet-like or compact.

Intimal calcification tends to be patchy and compact, medial calcification linear along the
vessel ("tram-track") or sheet-like in its wall (London GM et al., Nephrol Dial Transplant
2003;18:1731-1740, on the two forms in end-stage renal disease); these descriptors say which a
lesion looks like, they do not diagnose either.

Definitions, per lesion (its kept voxels, from :func:`skimage.measure.regionprops` on the
lesion label map):

- the second moments of the lesion as a solid: the covariance of the voxel centres in mm plus
  each voxel's own extent (a uniform box of side d has variance d^2 / 12 along that side), with
  eigenvalues l1 >= l2 >= l3;
- ``length_mm``, ``width_mm``, ``thickness_mm``: sqrt(12 l), the side of the uniform box with the
  same second moment along each principal axis (a 10 mm rod one voxel thick has length 10 mm);
- ``extent``: voxels / voxels of the lesion's bounding box (regionprops' ``extent``);
- ``linearity``, ``planarity``, ``sphericity``: Westin's shape measures of the eigenvalues,
  (l1 - l2) / l1, (l2 - l3) / l1 and l3 / l1, which sum to 1 (Westin CF et al., Med Image Anal
  2002;6:93-108, normalised by the largest eigenvalue); ``shape_class`` is the largest of the
  three: linear, planar (sheet-like) or spherical (compact).

A lesion of one or a few voxels is as compact as its voxels: its shape says more about the
voxel grid than about the calcium (``n_voxels`` in lesions.csv says how many there are).
"""

from __future__ import annotations

import numpy as np

from ..records import LesionShape


def lesion_shapes(labels: np.ndarray, spacing_mm: tuple[float, float, float]
                  ) -> tuple[LesionShape, ...]:
    """The shape of every lesion of a label map (0 = background, lesion i = label i), on a grid
    of ``spacing_mm`` (slice increment, row, column)."""
    from skimage.measure import regionprops  # lazy: only when output.lesion_shape asks

    spacing = np.asarray(spacing_mm, dtype=float)
    box_var = np.diag(spacing ** 2 / 12.0)
    out = []
    for props in regionprops(labels):
        mm = props.coords * spacing
        cov = (np.cov(mm, rowvar=False, bias=True) if len(mm) > 1 else np.zeros((3, 3))) + box_var
        ev = np.sort(np.linalg.eigvalsh(cov))[::-1]
        ev = np.clip(ev, 0.0, None)
        l1, l2, l3 = (float(v) for v in ev)
        shape = {"linear": (l1 - l2) / l1, "planar": (l2 - l3) / l1, "spherical": l3 / l1}
        out.append(LesionShape(
            lesion_id=int(props.label), length_mm=float(np.sqrt(12.0 * l1)),
            width_mm=float(np.sqrt(12.0 * l2)), thickness_mm=float(np.sqrt(12.0 * l3)),
            extent=float(props.extent), linearity=shape["linear"], planarity=shape["planar"],
            sphericity=shape["spherical"], shape_class=max(shape, key=shape.__getitem__)))
    return tuple(out)
