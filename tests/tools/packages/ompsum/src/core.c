#define PY_SSIZE_T_CLEAN
#include <Python.h>
long long ompsum_squares(long long n);
int ompsum_threads(void);
static PyObject *squares(PyObject *self, PyObject *arg) {
    long long n = PyLong_AsLongLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    return PyLong_FromLongLong(ompsum_squares(n));
}
static PyObject *threads(PyObject *self, PyObject *unused) { return PyLong_FromLong(ompsum_threads()); }
static PyMethodDef methods[] = {{"squares", squares, METH_O, "sum of SCALE*i*i for i < n"},
                                {"threads", threads, METH_NOARGS, "omp_get_max_threads()"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_core", NULL, -1, methods};
PyMODINIT_FUNC PyInit__core(void) { return PyModule_Create(&mod); }
