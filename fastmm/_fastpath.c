/* fastmm._fastpath: the small-problem fast path of fastmm.matmul, in C.

   fastmm.matmul(a, b) hands every product whose `a` has fewer than `threshold` elements
   straight to torch.matmul (no fast plan applies to it). Written in Python, that test and the
   extra call frame cost 0.4-0.6 us per call on this project's CPU machine: about 5 % of a
   64 x 64 fp32 torch.matmul on two threads (10-12 us). Here it costs one `a.numel()` call and one
   comparison.

   The C function decides only that one case: exactly two positional arguments, no keywords,
   `a.numel()` an int below the threshold. Everything else (keywords, large or non-tensor
   operands, symbolic sizes, an exception from numel) is passed unchanged to the Python
   implementation, `fastmm.runtime._matmul`, which repeats the same test first; so the two paths
   give the same results and the same errors. Under torch.compile, dynamo traces the Python
   implementation instead (registered with torch.compiler.substitute_in_graph in fastmm.runtime).

   make(vendor, general, threshold, doc) -> the builtin function `matmul`; called once at import.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject *vendor;      /* torch.matmul */
    PyObject *general;     /* fastmm.runtime._matmul: the Python implementation */
    PyObject *numel_name;  /* interned "numel" */
    Py_ssize_t threshold;  /* a.numel() below this goes to vendor */
} FastState;

static FastState *
state_of(PyObject *module)
{
    return (FastState *)PyModule_GetState(module);
}

/* 1 when `a` (args[0]) is a tensor with fewer than threshold elements, else 0. Never raises. */
static int
is_small(FastState *st, PyObject *const *args)
{
    PyObject *numel = PyObject_VectorcallMethod(st->numel_name, args, 1, NULL);
    if (numel == NULL) {
        PyErr_Clear();            /* not a tensor: the general path gives torch.matmul's error */
        return 0;
    }
    int small = 0;
    if (PyLong_CheckExact(numel)) {  /* a SymInt (tracing) goes to the general path */
        int overflow = 0;
        long long n = PyLong_AsLongLongAndOverflow(numel, &overflow);
        if (n == -1 && PyErr_Occurred())
            PyErr_Clear();
        else
            small = overflow == 0 && n < (long long)st->threshold;
    }
    Py_DECREF(numel);
    return small;
}

static PyObject *
fast_matmul(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    FastState *st = state_of(module);
    if (st->general == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "fastmm._fastpath: make() was not called");
        return NULL;
    }
    if (nargs == 2 && kwnames == NULL && is_small(st, args))
        return PyObject_Vectorcall(st->vendor, args, 2, NULL);
    return PyObject_Vectorcall(st->general, args, nargs, kwnames);
}

static PyObject *
make(PyObject *module, PyObject *args)
{
    PyObject *vendor, *general;
    Py_ssize_t threshold;
    const char *doc;
    if (!PyArg_ParseTuple(args, "OOns:make", &vendor, &general, &threshold, &doc))
        return NULL;
    if (!PyCallable_Check(vendor) || !PyCallable_Check(general)) {
        PyErr_SetString(PyExc_TypeError, "make: vendor and general must be callable");
        return NULL;
    }
    /* The method definition must outlive every function object made from it: it is allocated
       once per call and never freed (make() runs once per process). */
    PyMethodDef *def = PyMem_Calloc(1, sizeof(PyMethodDef));
    char *doc_copy = PyMem_Malloc(strlen(doc) + 1);
    if (def == NULL || doc_copy == NULL) {
        PyMem_Free(def);
        PyMem_Free(doc_copy);
        return PyErr_NoMemory();
    }
    strcpy(doc_copy, doc);
    def->ml_name = "matmul";
    def->ml_meth = (PyCFunction)(void (*)(void))fast_matmul;
    def->ml_flags = METH_FASTCALL | METH_KEYWORDS;
    def->ml_doc = doc_copy;

    FastState *st = state_of(module);
    Py_INCREF(vendor);
    Py_INCREF(general);
    Py_XSETREF(st->vendor, vendor);
    Py_XSETREF(st->general, general);
    st->threshold = threshold;
    PyObject *module_name = PyUnicode_FromString("fastmm");
    if (module_name == NULL)
        return NULL;
    PyObject *fn = PyCFunction_NewEx(def, module, module_name);
    Py_DECREF(module_name);
    return fn;
}

static PyMethodDef module_methods[] = {
    {"make", make, METH_VARARGS,
     "make(vendor, general, threshold, doc)\n--\n\n"
     "Return the builtin ``matmul``: vendor(a, b) when a.numel() < threshold and there are no\n"
     "keywords, else general(*args, **kwargs). ``doc`` starts with the text signature."},
    {NULL, NULL, 0, NULL},
};

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    FastState *st = state_of(module);
    Py_VISIT(st->vendor);
    Py_VISIT(st->general);
    return 0;
}

static int
module_clear(PyObject *module)
{
    FastState *st = state_of(module);
    Py_CLEAR(st->vendor);
    Py_CLEAR(st->general);
    Py_CLEAR(st->numel_name);
    return 0;
}

static void
module_free(void *module)
{
    module_clear((PyObject *)module);
}

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fastmm._fastpath",
    .m_doc = "The small-problem fast path of fastmm.matmul (see the file's header comment).",
    .m_size = sizeof(FastState),
    .m_methods = module_methods,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    PyObject *module = PyModule_Create(&fastpath_module);
    if (module == NULL)
        return NULL;
    FastState *st = state_of(module);
    st->numel_name = PyUnicode_InternFromString("numel");
    if (st->numel_name == NULL) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
