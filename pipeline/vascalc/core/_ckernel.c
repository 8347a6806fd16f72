/* Streaming slice-lesion kernel, compiled ahead of time: one pass over the voxels, no label
 * volume, nothing to load or compile when a process starts.
 *
 * For each slice it finds the runs of calcium voxels (value >= threshold) along every row,
 * unions each run with the runs of the row above that touch it (8- or 4-connected) and sums
 * count, peak, value and index per run. The runs of a slice resolve into slice lesions,
 * numbered in raster order of their first voxel (as scipy.ndimage.label numbers them); the
 * kept ones (area >= min_px) are unioned with the kept slice lesions of the previous slice
 * they touch (26-, 18- or 6-connected), and the 3-D lesions are those unions, numbered in
 * the order of their first slice lesion. The result equals pipeline.segment's scipy
 * reference, which the tests use as its oracle.
 *
 * Run-based connected-component labelling after Rosenfeld & Pfaltz, J ACM 1966;13:471 (the
 * two-pass union-find scheme), applied to row runs as in He et al., IEEE Trans Image Process
 * 2008;17:749.
 *
 * Interface (buffer protocol only, no numpy headers needed to build):
 *   scan(buffer, n_slices, n_rows, n_cols, format, threshold, min_px, eight, link)
 * with format one of 'h' (int16), 'i' (int32), 'f' (float32), 'd' (float64) and the buffer
 * C-contiguous. Returns (n_slice_lesions, n_lesions, slice, area, peak, sum, sum_row,
 * sum_col, kept, lesion) where the last eight are bytearrays of int64 / float64 / uint8.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int64_t i64;

static i64 find(i64 *parent, i64 i) {
    i64 root = i;
    while (parent[root] != root) root = parent[root];
    while (parent[i] != root) {
        i64 nxt = parent[i];
        parent[i] = root;
        i = nxt;
    }
    return root;
}

static void unite(i64 *parent, i64 a, i64 b) {
    i64 ra = find(parent, a), rb = find(parent, b);
    if (ra < rb) parent[rb] = ra;
    else if (rb < ra) parent[ra] = rb;
}

/* runs [a0, a1) and [c0, c1) on neighbouring rows touch: sharing a column, or also at a
 * corner when diagonal */
static int touch(i64 a0, i64 a1, i64 c0, i64 c1, int diagonal) {
    if (diagonal) return a0 <= c1 && c0 <= a1;
    return a0 < c1 && c0 < a1;
}

/* growable per-slice-lesion arrays */
typedef struct {
    i64 n, cap;
    i64 *slice, *area, *par;
    double *peak, *sum, *srow, *scol;
    uint8_t *kept;
} Groups;

static int groups_reserve(Groups *g, i64 need) {
    if (need <= g->cap) return 0;
    i64 cap = g->cap ? g->cap : 1024;
    while (cap < need) cap *= 2;
#define GROW(field, type)                                                     \
    do {                                                                      \
        void *p = realloc(g->field, (size_t)cap * sizeof(type));              \
        if (!p) return -1;                                                    \
        g->field = (type *)p;                                                 \
    } while (0)
    GROW(slice, i64); GROW(area, i64); GROW(par, i64); GROW(peak, double);
    GROW(sum, double); GROW(srow, double); GROW(scol, double); GROW(kept, uint8_t);
#undef GROW
    g->cap = cap;
    return 0;
}

static void groups_free(Groups *g) {
    free(g->slice); free(g->area); free(g->par); free(g->peak);
    free(g->sum); free(g->srow); free(g->scol); free(g->kept);
}

/* per-slice run arrays, sized for the worst case of one slice */
typedef struct {
    i64 *row, *c0, *c1, *par, *cnt, *les, *root_gid, *row_start;
    double *max, *sum, *scol;
    i64 *p_c0, *p_c1, *p_les, *p_row_start;
} Runs;

static void runs_free(Runs *r) {
    free(r->row); free(r->c0); free(r->c1); free(r->par); free(r->cnt); free(r->les);
    free(r->root_gid); free(r->row_start); free(r->max); free(r->sum); free(r->scol);
    free(r->p_c0); free(r->p_c1); free(r->p_les); free(r->p_row_start);
}

static int runs_alloc(Runs *r, i64 cap, i64 n_rows) {
    memset(r, 0, sizeof(*r));
    size_t ci = (size_t)cap * sizeof(i64), cd = (size_t)cap * sizeof(double);
    r->row = malloc(ci); r->c0 = malloc(ci); r->c1 = malloc(ci); r->par = malloc(ci);
    r->cnt = malloc(ci); r->les = malloc(ci); r->root_gid = malloc(ci);
    r->max = malloc(cd); r->sum = malloc(cd); r->scol = malloc(cd);
    r->p_c0 = malloc(ci); r->p_c1 = malloc(ci); r->p_les = malloc(ci);
    r->row_start = malloc((size_t)(n_rows + 1) * sizeof(i64));
    r->p_row_start = calloc((size_t)(n_rows + 1), sizeof(i64));
    if (!(r->row && r->c0 && r->c1 && r->par && r->cnt && r->les && r->root_gid && r->max
          && r->sum && r->scol && r->p_c0 && r->p_c1 && r->p_les && r->row_start
          && r->p_row_start)) return -1;
    return 0;
}

/* Scan one row of values (any element type) into runs; the row above's runs are
 * [row_start[r-1], row_start[r]). Returns the new run count. */
#define DEFINE_SCAN_ROW(NAME, T)                                                          \
    static i64 NAME(const T *line, i64 n_c, double thr, T pre, i64 r, i64 n, Runs *R,     \
                    int eight)                                                            \
    {                                                                                     \
        i64 j0 = r > 0 ? R->row_start[r - 1] : 0;                                         \
        i64 j_end = n;                                                                    \
        i64 c = 0;                                                                        \
        R->row_start[r] = n;                                                              \
        while (c < n_c) {                                                                 \
            /* calcium is sparse: skip blocks of 32 values below the threshold at once,   \
             * compared in the array's own type with pre <= thr (never skips calcium) */    \
            while (c + 32 <= n_c) {                                                       \
                int any = 0;                                                              \
                for (int b = 0; b < 32; b++) any |= line[c + b] >= pre;                   \
                if (any) break;                                                           \
                c += 32;                                                                  \
            }                                                                             \
            if (c >= n_c) break;                                                          \
            if ((double)line[c] >= thr) {                                                 \
                i64 c0 = c, cnt = 0;                                                      \
                double mx = -INFINITY, sm = 0.0, sc = 0.0;                                \
                while (c < n_c) {                                                         \
                    double x = (double)line[c];                                           \
                    if (!(x >= thr)) break;                                               \
                    if (x > mx) mx = x;                                                   \
                    sm += x;                                                              \
                    sc += (double)c;                                                      \
                    cnt += 1;                                                             \
                    c += 1;                                                               \
                }                                                                         \
                R->row[n] = r; R->c0[n] = c0; R->c1[n] = c; R->par[n] = n;                \
                R->cnt[n] = cnt; R->max[n] = mx; R->sum[n] = sm; R->scol[n] = sc;         \
                if (r > 0) {                                                              \
                    i64 slack = eight ? 0 : 1;                                            \
                    while (j0 < j_end && R->c1[j0] < c0 + slack) j0 += 1;                 \
                    for (i64 j = j0; j < j_end && R->c0[j] <= c - slack; j++)             \
                        if (touch(R->c0[j], R->c1[j], c0, c, eight)) unite(R->par, n, j); \
                }                                                                         \
                n += 1;                                                                   \
            } else {                                                                      \
                c += 1;                                                                   \
            }                                                                             \
        }                                                                                 \
        return n;                                                                         \
    }

DEFINE_SCAN_ROW(scan_row_i16, int16_t)
DEFINE_SCAN_ROW(scan_row_i32, int32_t)
DEFINE_SCAN_ROW(scan_row_f32, float)
DEFINE_SCAN_ROW(scan_row_f64, double)

static PyObject *as_bytes(const void *data, i64 n, size_t itemsize) {
    return PyByteArray_FromStringAndSize((const char *)data, (Py_ssize_t)(n * (i64)itemsize));
}

static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *obj;
    Py_ssize_t n_sl, n_r, n_c;
    int fmt, eight, link;
    double thr, min_px;
    (void)self;
    if (!PyArg_ParseTuple(args, "OnnnCddpi", &obj, &n_sl, &n_r, &n_c, &fmt, &thr, &min_px,
                          &eight, &link))
        return NULL;
    size_t itemsize = fmt == 'h' ? 2 : fmt == 'i' ? 4 : fmt == 'f' ? 4 : fmt == 'd' ? 8 : 0;
    if (!itemsize) {
        PyErr_Format(PyExc_ValueError, "format must be one of 'h', 'i', 'f', 'd', got %c", fmt);
        return NULL;
    }
    if (n_sl < 0 || n_r < 0 || n_c < 0 || (link != 6 && link != 18 && link != 26)) {
        PyErr_SetString(PyExc_ValueError, "bad shape or link connectivity");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if ((size_t)view.len != (size_t)n_sl * (size_t)n_r * (size_t)n_c * itemsize) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "buffer size does not match the shape and format");
        return NULL;
    }

    i64 cap_runs = (i64)n_r * (((i64)n_c + 1) / 2) + 1;
    Runs R;
    Groups G;
    memset(&G, 0, sizeof(G));
    i64 *lesion = NULL, *comp_id = NULL;
    PyObject *result = NULL;
    int failed = runs_alloc(&R, cap_runs, n_r) < 0 || groups_reserve(&G, 1024) < 0;
    i64 ng = 0, n_les = 0;

    /* block pre-check thresholds in each type, never above thr (NaN thr: nothing is calcium) */
    double lo_thr = isnan(thr) ? INFINITY : floor(thr);
    int16_t pre_i16 = lo_thr < -32768.0 ? INT16_MIN : lo_thr > 32767.0 ? INT16_MAX : (int16_t)lo_thr;
    int32_t pre_i32 = lo_thr < -2147483648.0 ? INT32_MIN
                      : lo_thr > 2147483647.0 ? INT32_MAX : (int32_t)lo_thr;
    float pre_f32 = (float)thr;
    if (!isnan(thr) && (double)pre_f32 > thr) pre_f32 = nextafterf(pre_f32, -INFINITY);

    Py_BEGIN_ALLOW_THREADS
    i64 n_prev = 0;
    const char *base = (const char *)view.buf;
    for (i64 k = 0; k < n_sl && !failed; k++) {
        i64 n = 0;
        for (i64 r = 0; r < n_r; r++) {
            const char *line = base + ((size_t)k * (size_t)n_r + (size_t)r) * (size_t)n_c * itemsize;
            switch (fmt) {
            case 'h': n = scan_row_i16((const int16_t *)line, n_c, thr, pre_i16, r, n, &R, eight); break;
            case 'i': n = scan_row_i32((const int32_t *)line, n_c, thr, pre_i32, r, n, &R, eight); break;
            case 'f': n = scan_row_f32((const float *)line, n_c, thr, pre_f32, r, n, &R, eight); break;
            default: n = scan_row_f64((const double *)line, n_c, thr, thr, r, n, &R, eight); break;
            }
        }
        R.row_start[n_r] = n;

        /* resolve this slice's runs into slice lesions, numbered in raster order */
        i64 g_first = ng;
        for (i64 i = 0; i < n; i++) R.root_gid[i] = -1;
        for (i64 i = 0; i < n; i++) {
            i64 rt = find(R.par, i);
            i64 g = R.root_gid[rt];
            if (g < 0) {
                g = ng;
                R.root_gid[rt] = g;
                ng += 1;
                if (groups_reserve(&G, ng) < 0) { failed = 1; break; }
                G.slice[g] = k; G.area[g] = 0; G.peak[g] = -INFINITY; G.sum[g] = 0.0;
                G.srow[g] = 0.0; G.scol[g] = 0.0; G.par[g] = g;
            }
            R.les[i] = g;
            G.area[g] += R.cnt[i];
            if (R.max[i] > G.peak[g]) G.peak[g] = R.max[i];
            G.sum[g] += R.sum[i];
            G.srow[g] += (double)(R.row[i] * R.cnt[i]);
            G.scol[g] += R.scol[i];
        }
        if (failed) break;
        for (i64 g = g_first; g < ng; g++) G.kept[g] = (double)G.area[g] >= min_px;

        /* link kept slice lesions with the kept ones of the previous slice they touch */
        if (n_prev > 0) {
            for (i64 i = 0; i < n; i++) {
                i64 gi = R.les[i];
                if (!G.kept[gi]) continue;
                i64 r = R.row[i], c0 = R.c0[i], c1 = R.c1[i];
                i64 lo = r - 1 > 0 ? r - 1 : 0, hi = r + 2 < n_r ? r + 2 : n_r;
                for (i64 rr = lo; rr < hi; rr++) {
                    int same = rr == r;
                    if (link == 6 && !same) continue;
                    int diagonal = link == 26 || (link == 18 && same);
                    for (i64 j = R.p_row_start[rr]; j < R.p_row_start[rr + 1]; j++) {
                        if (R.p_c0[j] > c1) break;
                        if (G.kept[R.p_les[j]] && touch(R.p_c0[j], R.p_c1[j], c0, c1, diagonal))
                            unite(G.par, gi, R.p_les[j]);
                    }
                }
            }
        }

        /* this slice becomes the previous one */
        memcpy(R.p_c0, R.c0, (size_t)n * sizeof(i64));
        memcpy(R.p_c1, R.c1, (size_t)n * sizeof(i64));
        memcpy(R.p_les, R.les, (size_t)n * sizeof(i64));
        memcpy(R.p_row_start, R.row_start, (size_t)(n_r + 1) * sizeof(i64));
        n_prev = n;
    }

    /* 3-D lesions: union-find roots over kept slice lesions, numbered in raster order */
    if (!failed) {
        lesion = malloc((size_t)(ng ? ng : 1) * sizeof(i64));
        comp_id = malloc((size_t)(ng ? ng : 1) * sizeof(i64));
        if (!lesion || !comp_id) failed = 1;
    }
    if (!failed) {
        for (i64 g = 0; g < ng; g++) { lesion[g] = -1; comp_id[g] = -1; }
        for (i64 g = 0; g < ng; g++) {
            if (!G.kept[g]) continue;
            i64 rt = find(G.par, g);
            if (comp_id[rt] < 0) comp_id[rt] = n_les++;
            lesion[g] = comp_id[rt];
        }
    }
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&view);
    if (failed) {
        PyErr_NoMemory();
    } else {
        result = Py_BuildValue(
            "(LLNNNNNNNN)", (long long)ng, (long long)n_les,
            as_bytes(G.slice, ng, sizeof(i64)), as_bytes(G.area, ng, sizeof(i64)),
            as_bytes(G.peak, ng, sizeof(double)), as_bytes(G.sum, ng, sizeof(double)),
            as_bytes(G.srow, ng, sizeof(double)), as_bytes(G.scol, ng, sizeof(double)),
            as_bytes(G.kept, ng, sizeof(uint8_t)), as_bytes(lesion, ng, sizeof(i64)));
    }
    runs_free(&R);
    groups_free(&G);
    free(lesion);
    free(comp_id);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(buffer, n_slices, n_rows, n_cols, format, threshold, min_px, eight, link)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ckernel",
    "Streaming slice-lesion kernel (C); see pipeline.segment.", -1, methods,
};

PyMODINIT_FUNC PyInit__ckernel(void) { return PyModule_Create(&module); }
