"""Streaming slice-lesion kernel (numba): one pass over the voxels, no label volume.

For each slice it finds the runs of calcium voxels along every row, unions each run with the
runs of the row above that touch it (8- or 4-connected), and accumulates count, peak, sum and
index sums per run. The run sets of a slice are resolved into slice lesions (numbered in
raster order of their first voxel, as scipy.ndimage.label numbers them), the kept ones are
unioned with the kept slice lesions of the previous slice they touch (26-, 18- or
6-connected), and the 3-D lesions are those unions. The result is identical to
:func:`pipeline.segment.find_slice_lesions_scipy`, which the tests use as its oracle.

Run-based connected-component labelling after Rosenfeld & Pfaltz, J ACM 1966;13:471 (the
two-pass union-find scheme), applied here to row runs as in He et al., IEEE Trans Image
Process 2008;17:749.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _find(parent, i):
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root


@njit(cache=True, nogil=True)
def _union(parent, a, b):
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


@njit(cache=True, nogil=True)
def _grow(a, need):
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, 2 * a.shape[0]), a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True, nogil=True)
def _touch(a0, a1, c0, c1, diagonal):
    """Runs [a0, a1) and [c0, c1) on neighbouring rows touch: sharing a column, or also at a
    corner when ``diagonal``."""
    if diagonal:
        return a0 <= c1 and c0 <= a1
    return a0 < c1 and c0 < a1


@njit(cache=True, nogil=True)
def scan_slice_lesions(hu, thr, min_px, eight, link):
    n_sl, n_r, n_c = hu.shape
    cap_runs = n_r * ((n_c + 1) // 2) + 1
    run_row = np.empty(cap_runs, np.int64)
    run_c0 = np.empty(cap_runs, np.int64)
    run_c1 = np.empty(cap_runs, np.int64)
    run_par = np.empty(cap_runs, np.int64)
    run_cnt = np.empty(cap_runs, np.int64)
    run_max = np.empty(cap_runs, np.float64)
    run_sum = np.empty(cap_runs, np.float64)
    run_scol = np.empty(cap_runs, np.float64)
    run_les = np.empty(cap_runs, np.int64)
    root_gid = np.empty(cap_runs, np.int64)
    row_start = np.empty(n_r + 1, np.int64)
    p_row_start = np.zeros(n_r + 1, np.int64)
    p_c0 = np.empty(cap_runs, np.int64)
    p_c1 = np.empty(cap_runs, np.int64)
    p_les = np.empty(cap_runs, np.int64)
    n_prev = 0

    cap = 1024
    g_slice = np.empty(cap, np.int64)
    g_area = np.empty(cap, np.int64)
    g_peak = np.empty(cap, np.float64)
    g_sum = np.empty(cap, np.float64)
    g_srow = np.empty(cap, np.float64)
    g_scol = np.empty(cap, np.float64)
    g_kept = np.empty(cap, np.bool_)
    g_par = np.empty(cap, np.int64)
    ng = 0

    for k in range(n_sl):
        n = 0
        for r in range(n_r):
            line = hu[k, r]
            row_start[r] = n
            j0 = row_start[r - 1] if r > 0 else 0
            j_end = n  # runs of the row above are [row_start[r-1], row_start[r])
            c = 0
            while c < n_c:
                if line[c] >= thr:
                    c0 = c
                    cnt = 0
                    mx = -np.inf
                    sm = 0.0
                    sc = 0.0
                    while c < n_c:
                        v = line[c]
                        if not v >= thr:
                            break
                        x = float(v)
                        if x > mx:
                            mx = x
                        sm += x
                        sc += c
                        cnt += 1
                        c += 1
                    run_row[n] = r
                    run_c0[n] = c0
                    run_c1[n] = c
                    run_par[n] = n
                    run_cnt[n] = cnt
                    run_max[n] = mx
                    run_sum[n] = sm
                    run_scol[n] = sc
                    if r > 0:
                        # skip runs of the row above that end before this one can touch
                        while j0 < j_end and run_c1[j0] < c0 + (0 if eight else 1):
                            j0 += 1
                        j = j0
                        while j < j_end and run_c0[j] <= c - (0 if eight else 1):
                            if _touch(run_c0[j], run_c1[j], c0, c, eight):
                                _union(run_par, n, j)
                            j += 1
                    n += 1
                else:
                    c += 1
        row_start[n_r] = n

        # resolve this slice's runs into slice lesions, numbered in raster order
        g_first = ng
        for i in range(n):
            root_gid[i] = -1
        for i in range(n):
            rt = _find(run_par, i)
            g = root_gid[rt]
            if g < 0:
                g = ng
                root_gid[rt] = g
                ng += 1
                if ng > g_slice.shape[0]:
                    g_slice = _grow(g_slice, ng)
                    g_area = _grow(g_area, ng)
                    g_peak = _grow(g_peak, ng)
                    g_sum = _grow(g_sum, ng)
                    g_srow = _grow(g_srow, ng)
                    g_scol = _grow(g_scol, ng)
                    g_kept = _grow(g_kept, ng)
                    g_par = _grow(g_par, ng)
                g_slice[g] = k
                g_area[g] = 0
                g_peak[g] = -np.inf
                g_sum[g] = 0.0
                g_srow[g] = 0.0
                g_scol[g] = 0.0
                g_par[g] = g
            run_les[i] = g
            g_area[g] += run_cnt[i]
            if run_max[i] > g_peak[g]:
                g_peak[g] = run_max[i]
            g_sum[g] += run_sum[i]
            g_srow[g] += run_row[i] * run_cnt[i]
            g_scol[g] += run_scol[i]
        for g in range(g_first, ng):
            g_kept[g] = g_area[g] >= min_px

        # link kept slice lesions with the kept ones of the previous slice they touch
        if n_prev > 0:
            for i in range(n):
                gi = run_les[i]
                if not g_kept[gi]:
                    continue
                r = run_row[i]
                c0 = run_c0[i]
                c1 = run_c1[i]
                for rr in range(max(r - 1, 0), min(r + 2, n_r)):
                    same = rr == r
                    if link == 6 and not same:
                        continue
                    diagonal = link == 26 or (link == 18 and same)
                    for j in range(p_row_start[rr], p_row_start[rr + 1]):
                        if p_c0[j] > c1:
                            break
                        if g_kept[p_les[j]] and _touch(p_c0[j], p_c1[j], c0, c1, diagonal):
                            _union(g_par, gi, p_les[j])

        # this slice becomes the previous one
        for i in range(n):
            p_c0[i] = run_c0[i]
            p_c1[i] = run_c1[i]
            p_les[i] = run_les[i]
        for r in range(n_r + 1):
            p_row_start[r] = row_start[r]
        n_prev = n

    # 3-D lesions: union-find roots over kept slice lesions, numbered in raster order
    lesion = np.full(ng, -1, np.int64)
    comp_id = np.full(ng, -1, np.int64)
    n_les = 0
    for g in range(ng):
        if g_kept[g]:
            rt = _find(g_par, g)
            if comp_id[rt] < 0:
                comp_id[rt] = n_les
                n_les += 1
            lesion[g] = comp_id[rt]
    return (g_slice[:ng].copy(), g_area[:ng].copy(), g_peak[:ng].copy(), g_sum[:ng].copy(),
            g_srow[:ng].copy(), g_scol[:ng].copy(), g_kept[:ng].copy(), lesion, n_les)


def warm_up() -> None:
    """Load (or compile) the kernel for int16 HU, the common case, so a worker process pays
    numba's start-up once, before its first case (float32 HU load on first use)."""
    scan_slice_lesions(np.zeros((1, 1, 1), np.int16), 130.0, 1.0, True, 26)
