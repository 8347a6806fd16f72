"""The pieces of a stack scored slab by slab, joined into lesions with bounded memory.

Each slab's 3-D components ("pieces") are added with their sums; pieces that touch across a
slab boundary are joined by union-find (Tarjan RE, Efficiency of a good but not linear set
union algorithm, J ACM 1975;22:215-225; the smaller id stays the root, so a lesion is known by
its first piece, i.e. by its first voxel in raster order). A lesion none of whose pieces lies
on the last plane read can grow no more: :meth:`PieceTable.compact` closes it into a compact
lesion record (or drops it when it has fewer than ``min_voxels`` voxels), so what is held
between slabs is the open pieces and the kept lesions, not every piece ever seen.
"""

from __future__ import annotations

import numpy as np

#: per-piece columns: voxels, sum of stored values, sums of slice/row/col indices, peak stored
#: value, first and last slice
_COLS = ("count", "total", "s0", "s1", "s2", "peak", "zmin", "zmax")


class PieceTable:
    """Open pieces (columns of :data:`_COLS`, their global id and union-find parent) and the
    closed lesions."""

    def __init__(self, *, min_voxels: int = 1) -> None:
        self.min_voxels = max(1, int(min_voxels))
        self.n = 0
        self.next_gid = 0
        self.gid = np.zeros(0, dtype=np.int64)
        self.parent = np.zeros(0, dtype=np.int64)
        self.cols = {c: np.zeros(0) for c in _COLS}
        self.regions: list[np.ndarray] = []  # rows (local piece, region value, voxels, sum)
        self.closed: dict[str, list[np.ndarray]] = {c: [] for c in ("gid", *_COLS)}
        self.closed_regions: dict[tuple[int, int], list[float]] = {}

    def add(self, stats: dict[str, np.ndarray], regions: np.ndarray | None) -> int:
        """Add a slab's pieces (arrays of :data:`_COLS`, one entry per piece) and their region
        rows (slab-local piece index from 0, region value, voxels, stored sum); returns the
        local index of the slab's first piece."""
        k = len(stats["count"])
        base = self.n
        self.gid = np.concatenate([self.gid, np.arange(self.next_gid, self.next_gid + k)])
        self.parent = np.concatenate([self.parent, np.arange(base, base + k)])
        for c in _COLS:
            self.cols[c] = np.concatenate([self.cols[c], stats[c].astype(np.float64)])
        if regions is not None and len(regions):
            r = regions.copy()
            r[:, 0] += base
            self.regions.append(r)
        self.n += k
        self.next_gid += k
        return base

    def find(self, a: int) -> int:
        p = self.parent
        while p[a] != a:
            p[a] = p[p[a]]
            a = int(p[a])
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo

    def roots(self) -> np.ndarray:
        r = self.parent.copy()
        while True:
            nxt = r[r]
            if np.array_equal(nxt, r):
                return r
            r = nxt

    def compact(self, open_local: np.ndarray) -> np.ndarray:
        """Close every lesion without a piece in ``open_local`` (local indices of the pieces on
        the last plane read); returns the map old local index -> new local index (-1 for a
        closed piece)."""
        roots = self.roots()
        is_open = np.isin(roots, np.unique(roots[open_local])) if len(open_local) else \
            np.zeros(self.n, dtype=bool)
        self._close(roots, ~is_open)
        remap = np.full(self.n, -1, dtype=np.int64)
        keep = np.flatnonzero(is_open)
        remap[keep] = np.arange(len(keep))
        self.gid = self.gid[keep]
        self.parent = remap[roots[keep]]  # every open piece points at its (open) root
        for c in _COLS:
            self.cols[c] = self.cols[c][keep]
        if self.regions:
            r = np.concatenate(self.regions)
            r = r[is_open[r[:, 0].astype(np.int64)]]
            r[:, 0] = remap[r[:, 0].astype(np.int64)]
            self.regions = [r] if len(r) else []
        self.n = len(keep)
        return remap

    def _close(self, roots: np.ndarray, closing: np.ndarray) -> None:
        if not closing.any():
            return
        idx = np.flatnonzero(closing)
        uniq, comp = np.unique(roots[idx], return_inverse=True)
        comp = comp.ravel()
        m = len(uniq)
        agg = {c: np.bincount(comp, weights=self.cols[c][idx], minlength=m)
               for c in ("count", "total", "s0", "s1", "s2")}
        for c, fn, start in (("peak", np.maximum, -np.inf), ("zmin", np.minimum, np.inf),
                             ("zmax", np.maximum, -np.inf)):
            a = np.full(m, start)
            fn.at(a, comp, self.cols[c][idx])
            agg[c] = a
        kept = agg["count"] >= self.min_voxels
        self.closed["gid"].append(self.gid[uniq][kept])  # the root is the lesion's first piece
        for c in _COLS:
            self.closed[c].append(agg[c][kept])
        if self.regions:
            r = np.concatenate(self.regions)
            piece = r[:, 0].astype(np.int64)
            sel = closing[piece]
            lesion_of = np.full(self.n, -1, dtype=np.int64)
            lesion_of[idx] = comp
            for p, rv, nv, sv in r[sel]:
                li = int(lesion_of[int(p)])
                if kept[li]:
                    acc = self.closed_regions.setdefault((int(self.gid[uniq[li]]), int(rv)),
                                                         [0, 0.0])
                    acc[0] += nv
                    acc[1] += sv

    def finish(self) -> tuple[dict[str, np.ndarray], dict[tuple[int, int], list[float]]]:
        """Close every lesion; the lesions' columns (and ``gid``) in raster order of their
        first voxel, and their region sums keyed (lesion gid, region value)."""
        self.compact(np.zeros(0, dtype=np.int64))
        out = {c: np.concatenate(v) if v else np.zeros(0) for c, v in self.closed.items()}
        order = np.argsort(out["gid"], kind="stable")
        return {c: v[order] for c, v in out.items()}, self.closed_regions
