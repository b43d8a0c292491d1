/* kernels._cpu_fused: fused linear combinations of equal-shaped matrix blocks on the CPU.

   One call runs a small "combination program" (a table that the compiler derives from the
   schedule, see kernels/cpu_fused.py) over every element of its blocks, tile by tile:

       entry e = sum_k coef_k * src_k      (src: an input block, or an earlier entry)
       output o: dst[o] (= | +=) entry e

   Each tile is one row chunk of TC contiguous elements of every block. For a tile, every entry
   is computed into a per-thread tile buffer (L1/L2 resident: the entries of one tile take
   nent * TC elements), reading each input's chunk from memory once however many entries use
   it; then the outputs are stored. Intermediates (CSE temporaries that no product needs) never
   leave the tile buffer. Because a tile's outputs are stored only after all its entries are
   computed, a dst may be one of the srcs (a c-block that holds a product and then its output):
   the executed semantics are "read everything, then write", the same ones the compiler's
   translation validation runs (compiler/codegen/validate.py). An entry marked `direct` (its
   single output aliases no src) is computed straight into its dst row instead, saving the
   copy; the result is the same.

   Threads: OpenMP, `nthreads` from the caller (torch.get_num_threads()), over the
   (batch x row x chunk) tiles, handed out 8 at a time (dynamic: on a shared machine a descheduled
   thread does not hold the others at the end barrier); the GIL is released. Vectorised by the compiler (function clones
   for x86-64-v4 / v3 / baseline, chosen at load time). No torch headers: the caller passes
   data pointers, shapes and strides (in elements; the last dimension must be contiguous).

   program(nsrc, ndst, entry_start, term_src, term_coef, out_entry, out_dst, out_acc, direct)
       -> capsule (built once per table, at module import of the generated code)
   run(program, dtype, B, rows, cols, srcs, dsts, nthreads, tc)
       dtype: 0 float32, 1 float64; srcs/dsts: flat tuples (ptr, stride0, stride1, ...);
       tc: tile width in elements (0: the default below).
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    int nsrc, ndst, nent, nout;
    int *ent_start;  /* nent + 1 offsets into the terms */
    int *tsrc;       /* term source: < nsrc an input block, else entry (tsrc - nsrc) */
    double *tcoef;
    int *oent, *odst, *oacc;
    int *direct;     /* per entry: dst index written in place of the tile buffer, or -1 */
    int maxsrc;      /* the most terms of one entry */
} Prog;

#define CAPSULE "fastmm.cpu_fused.program"

static void
prog_free(PyObject *cap)
{
    Prog *p = (Prog *)PyCapsule_GetPointer(cap, CAPSULE);
    if (p == NULL)
        return;
    free(p->ent_start); free(p->tsrc); free(p->tcoef);
    free(p->oent); free(p->odst); free(p->oacc); free(p->direct);
    free(p);
}

static int
int_array(PyObject *seq, int n, int **out)
{
    *out = (int *)calloc(n > 0 ? n : 1, sizeof(int));
    if (*out == NULL) { PyErr_NoMemory(); return -1; }
    for (int i = 0; i < n; i++) {
        long v = PyLong_AsLong(PyTuple_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) return -1;
        (*out)[i] = (int)v;
    }
    return 0;
}

static PyObject *
program(PyObject *self, PyObject *args)
{
    int nsrc, ndst;
    PyObject *es, *ts, *tc, *oe, *od, *oa, *di;
    if (!PyArg_ParseTuple(args, "iiO!O!O!O!O!O!O!:program", &nsrc, &ndst, &PyTuple_Type, &es, &PyTuple_Type, &ts,
                          &PyTuple_Type, &tc, &PyTuple_Type, &oe, &PyTuple_Type, &od, &PyTuple_Type, &oa,
                          &PyTuple_Type, &di))
        return NULL;
    Prog *p = (Prog *)calloc(1, sizeof(Prog));
    if (p == NULL) return PyErr_NoMemory();
    p->nsrc = nsrc; p->ndst = ndst;
    p->nent = (int)PyTuple_GET_SIZE(es) - 1;
    int nterm = (int)PyTuple_GET_SIZE(ts);
    p->nout = (int)PyTuple_GET_SIZE(oe);
    PyObject *cap = PyCapsule_New(p, CAPSULE, prog_free);
    if (cap == NULL) { free(p); return NULL; }
    if (p->nent < 0 || PyTuple_GET_SIZE(tc) != nterm || PyTuple_GET_SIZE(od) != p->nout
        || PyTuple_GET_SIZE(oa) != p->nout || PyTuple_GET_SIZE(di) != p->nent) {
        PyErr_SetString(PyExc_ValueError, "program: inconsistent table lengths");
        goto fail;
    }
    if (int_array(es, p->nent + 1, &p->ent_start) || int_array(ts, nterm, &p->tsrc)
        || int_array(oe, p->nout, &p->oent) || int_array(od, p->nout, &p->odst)
        || int_array(oa, p->nout, &p->oacc) || int_array(di, p->nent, &p->direct))
        goto fail;
    p->tcoef = (double *)calloc(nterm > 0 ? nterm : 1, sizeof(double));
    if (p->tcoef == NULL) { PyErr_NoMemory(); goto fail; }
    for (int k = 0; k < nterm; k++) {
        p->tcoef[k] = PyFloat_AsDouble(PyTuple_GET_ITEM(tc, k));
        if (p->tcoef[k] == -1.0 && PyErr_Occurred()) goto fail;
    }
    /* check every index: a bad table must fail here, never read out of bounds in the kernel */
    if (p->ent_start[0] != 0 || p->ent_start[p->nent] != nterm) goto bad;
    for (int e = 0; e < p->nent; e++) {
        int k0 = p->ent_start[e], k1 = p->ent_start[e + 1];
        if (k1 <= k0) goto bad;
        if (k1 - k0 > p->maxsrc) p->maxsrc = k1 - k0;
        for (int k = k0; k < k1; k++)
            if (p->tsrc[k] < 0 || p->tsrc[k] >= nsrc + e) goto bad;  /* inputs or earlier entries */
        if (p->direct[e] < -1 || p->direct[e] >= ndst) goto bad;
    }
    for (int o = 0; o < p->nout; o++)
        if (p->oent[o] < 0 || p->oent[o] >= p->nent || p->odst[o] < 0 || p->odst[o] >= ndst) goto bad;
    return cap;
bad:
    PyErr_SetString(PyExc_ValueError, "program: an index of the table is out of range");
fail:
    Py_DECREF(cap);
    return NULL;
}

/* Default tile width: 512 elements (2 KiB fp32, 4 KiB fp64) per block. Winograd's output table
   on 2048^2 fp32 blocks, 2 threads, shared machine (docs/cpu.md): 128: 28.0 ms, 256: 32.0,
   512: 24.4, 1024: 24.0, 2048: 24.0 (one noisy run): 512 keeps the 6 entries of a tile in L1. */
#define DEFAULT_TC 512

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && __GNUC__ >= 12
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

/* One tile of width w: every entry, then every output. src[i] / dst[o]: row pointers. */
#define TILE_KERNEL(T, NAME)                                                                       \
    CLONES static void NAME(const Prog *p, T *tile, Py_ssize_t tc, T *const *src, T *const *dst,  \
                            Py_ssize_t w)                                                          \
    {                                                                                              \
        const T *ent[512];                                                                         \
        for (int e = 0; e < p->nent; e++) {                                                        \
            T *restrict t = p->direct[e] >= 0 ? dst[p->direct[e]] : tile + (size_t)e * tc;         \
            int k0 = p->ent_start[e], k1 = p->ent_start[e + 1];                                    \
            for (int k = k0; k < k1;) {                                                            \
                int s0 = p->tsrc[k];                                                               \
                const T *restrict x = s0 < p->nsrc ? src[s0] : ent[s0 - p->nsrc];                  \
                T c = (T)p->tcoef[k];                                                              \
                if (k + 1 < k1) { /* two terms per pass over the tile */                           \
                    int s1 = p->tsrc[k + 1];                                                       \
                    const T *restrict y = s1 < p->nsrc ? src[s1] : ent[s1 - p->nsrc];              \
                    T d = (T)p->tcoef[k + 1];                                                      \
                    if (k == k0)                                                                   \
                        for (Py_ssize_t j = 0; j < w; j++) t[j] = c * x[j] + d * y[j];             \
                    else                                                                           \
                        for (Py_ssize_t j = 0; j < w; j++) t[j] += c * x[j] + d * y[j];            \
                    k += 2;                                                                        \
                } else {                                                                           \
                    if (k == k0)                                                                   \
                        for (Py_ssize_t j = 0; j < w; j++) t[j] = c * x[j];                        \
                    else                                                                           \
                        for (Py_ssize_t j = 0; j < w; j++) t[j] += c * x[j];                       \
                    k += 1;                                                                        \
                }                                                                                  \
            }                                                                                      \
            ent[e] = t;                                                                            \
        }                                                                                          \
        for (int o = 0; o < p->nout; o++) {                                                        \
            int e = p->oent[o];                                                                    \
            if (p->direct[e] == p->odst[o]) continue; /* already there */                          \
            const T *restrict t = ent[e];                                                          \
            T *restrict d = dst[p->odst[o]];                                                       \
            if (p->oacc[o])                                                                        \
                for (Py_ssize_t j = 0; j < w; j++) d[j] += t[j];                                   \
            else                                                                                   \
                memcpy(d, t, (size_t)w * sizeof(T));                                               \
        }                                                                                          \
    }

TILE_KERNEL(float, tile_f32)
TILE_KERNEL(double, tile_f64)

typedef struct { char *ptr; Py_ssize_t s0, s1; } View;

static int
views(PyObject *seq, int n, View *out, const char *what)
{
    if (!PyTuple_Check(seq) || PyTuple_GET_SIZE(seq) != 3 * (Py_ssize_t)n) {
        PyErr_Format(PyExc_ValueError, "run: %s must be a tuple of %d (ptr, stride0, stride1) triples", what, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        out[i].ptr = (char *)PyLong_AsVoidPtr(PyTuple_GET_ITEM(seq, 3 * i));
        out[i].s0 = PyLong_AsSsize_t(PyTuple_GET_ITEM(seq, 3 * i + 1));
        out[i].s1 = PyLong_AsSsize_t(PyTuple_GET_ITEM(seq, 3 * i + 2));
        if (PyErr_Occurred()) return -1;
    }
    return 0;
}

/* a per-thread tile buffer, grown when a table needs more; never freed (a few hundred KiB) */
static _Thread_local void *tile_buf;
static _Thread_local size_t tile_cap;

static void *
thread_tile(size_t bytes)
{
    if (bytes > tile_cap) {
        free(tile_buf);
        tile_buf = NULL; tile_cap = 0;
        if (posix_memalign(&tile_buf, 64, bytes) != 0) { tile_buf = NULL; return NULL; }
        tile_cap = bytes;
    }
    return tile_buf;
}

static PyObject *
run(PyObject *self, PyObject *args)
{
    PyObject *cap, *srcs, *dsts;
    int dtype, nthreads;
    Py_ssize_t B, rows, cols, tc;
    if (!PyArg_ParseTuple(args, "OinnnOOin:run", &cap, &dtype, &B, &rows, &cols, &srcs, &dsts, &nthreads, &tc))
        return NULL;
    Prog *p = (Prog *)PyCapsule_GetPointer(cap, CAPSULE);
    if (p == NULL) return NULL;
    if (dtype != 0 && dtype != 1) { PyErr_SetString(PyExc_ValueError, "run: dtype must be 0 (f32) or 1 (f64)"); return NULL; }
    if (p->nent > 512 || p->nsrc > 4096 || p->ndst > 4096) {
        PyErr_SetString(PyExc_ValueError, "run: table too large (at most 512 entries, 4096 blocks per side)");
        return NULL;
    }
    View *v = (View *)malloc(sizeof(View) * (size_t)(p->nsrc + p->ndst + 1));
    if (v == NULL) return PyErr_NoMemory();
    if (views(srcs, p->nsrc, v, "srcs") || views(dsts, p->ndst, v + p->nsrc, "dsts")) { free(v); return NULL; }
    if (tc <= 0) tc = DEFAULT_TC;
    if (tc > cols) tc = cols;
    tc = (tc + 15) / 16 * 16;  /* each entry's tile starts 64-byte aligned */
    size_t es = dtype == 0 ? sizeof(float) : sizeof(double);
    Py_ssize_t nchunk = cols > 0 ? (cols + tc - 1) / tc : 0;
    Py_ssize_t items = B * rows * nchunk;
    int failed = 0;
    const int nsrc = p->nsrc, ndst = p->ndst;
    if (nthreads < 1) nthreads = 1;
    if (items < nthreads) nthreads = items > 0 ? (int)items : 1;
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        void *tile = thread_tile((size_t)(p->nent > 0 ? p->nent : 1) * (size_t)tc * es);
        char *sp[4096], *dp[4096];
        if (tile == NULL) {
            failed = 1;
        } else {
#pragma omp for schedule(dynamic, 8)
            for (Py_ssize_t it = 0; it < items; it++) {
                Py_ssize_t chunk = it % nchunk, row = it / nchunk;
                Py_ssize_t b = row / rows, i = row % rows, j0 = chunk * tc;
                Py_ssize_t w = cols - j0 < tc ? cols - j0 : tc;
                for (int s = 0; s < nsrc; s++)
                    sp[s] = v[s].ptr + (size_t)((b * v[s].s0 + i * v[s].s1 + j0) * (Py_ssize_t)es);
                for (int d = 0; d < ndst; d++)
                    dp[d] = v[nsrc + d].ptr + (size_t)((b * v[nsrc + d].s0 + i * v[nsrc + d].s1 + j0) * (Py_ssize_t)es);
                if (dtype == 0)
                    tile_f32(p, (float *)tile, tc, (float *const *)sp, (float *const *)dp, w);
                else
                    tile_f64(p, (double *)tile, tc, (double *const *)sp, (double *const *)dp, w);
            }
        }
    }
    Py_END_ALLOW_THREADS
    free(v);
    if (failed) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *
max_threads(PyObject *self, PyObject *noargs)
{
#ifdef _OPENMP
    return PyLong_FromLong(omp_get_max_threads());
#else
    return PyLong_FromLong(1);
#endif
}

static PyMethodDef methods[] = {
    {"program", program, METH_VARARGS, "program(nsrc, ndst, entry_start, term_src, term_coef, out_entry, "
                                       "out_dst, out_acc, direct) -> capsule"},
    {"run", run, METH_VARARGS, "run(program, dtype, B, rows, cols, srcs, dsts, nthreads, tc) -> None"},
    {"max_threads", max_threads, METH_NOARGS, "OpenMP's thread limit (1 when built without OpenMP)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "kernels._cpu_fused",
    "Fused linear combinations of matrix blocks on the CPU (see kernels/cpu_fused.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__cpu_fused(void)
{
    return PyModule_Create(&module);
}
