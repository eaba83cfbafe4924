/*
 * python/args.c — argument checks of the binding, done before any
 * conversion: a float that is nan, infinite or out of range never reaches a
 * C cast (where 1e300 or inf would wrap to a tiny or negative value), an int
 * too large for its C field is refused instead of being truncated, and a
 * wrong type raises TypeError naming the argument.
 */
#include "fpy.h"

#include <math.h>
#include <stdio.h>

static int is_number(PyObject *v)
{
    if (PyFloat_Check(v) || PyLong_Check(v))
        return 1;
    if (PyUnicode_Check(v) || PyBytes_Check(v) || PyByteArray_Check(v) || v == Py_None)
        return 0;
    PyNumberMethods *nb = Py_TYPE(v)->tp_as_number;
    return nb && (nb->nb_float || nb->nb_index);
}

int fpy_arg_double(PyObject *v, const char *name, double lo, double hi, double *out)
{
    char range[64]; /* PyErr_Format has no %g */
    snprintf(range, sizeof range, "[%g, %g]", lo, hi);
    if (!is_number(v)) {
        PyErr_Format(PyExc_TypeError, "%s must be a number in %s, not %.80s", name, range,
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    double d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_OverflowError, "%s=%R is out of range %s", name, v, range);
        } else if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s must be a number in %s, not %.80s", name, range,
                         Py_TYPE(v)->tp_name);
        }
        return -1;
    }
    if (!isfinite(d)) {
        PyErr_Format(PyExc_ValueError, "%s must be a finite number in %s, not %R", name, range,
                     v);
        return -1;
    }
    if (d < lo || d > hi) {
        PyErr_Format(PyExc_ValueError, "%s=%R is out of range %s", name, v, range);
        return -1;
    }
    *out = d;
    return 0;
}

int fpy_arg_ll(PyObject *v, const char *name, long long lo, long long hi, long long *out)
{
    if (PyFloat_Check(v) || !PyIndex_Check(v)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int in [%lld, %lld], not %.80s", name, lo, hi,
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    PyObject *i = PyNumber_Index(v);
    if (!i)
        return -1;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(i, &overflow);
    if (x == -1 && !overflow && PyErr_Occurred()) {
        Py_DECREF(i);
        return -1;
    }
    if (overflow) {
        PyErr_Format(PyExc_OverflowError, "%s=%R is out of range [%lld, %lld]", name, i, lo, hi);
        Py_DECREF(i);
        return -1;
    }
    Py_DECREF(i);
    if (x < lo || x > hi) {
        PyErr_Format(PyExc_ValueError, "%s=%lld is out of range [%lld, %lld]", name, x, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

const char *fpy_arg_str(PyObject *v, const char *name)
{
    if (!PyUnicode_Check(v)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, not %.80s", name, Py_TYPE(v)->tp_name);
        return NULL;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n);
    if (s && (Py_ssize_t)strlen(s) != n) {
        PyErr_Format(PyExc_ValueError, "%s must not contain NUL characters", name);
        return NULL;
    }
    return s;
}

int fpy_arg_bool(PyObject *v, const char *name, int *out)
{
    if (PyBool_Check(v)) {
        *out = v == Py_True;
        return 0;
    }
    if (PyFloat_Check(v) || !PyIndex_Check(v)) {
        PyErr_Format(PyExc_TypeError, "%s must be a bool, not %.80s", name, Py_TYPE(v)->tp_name);
        return -1;
    }
    long long x;
    if (fpy_arg_ll(v, name, 0, 1, &x) < 0)
        return -1;
    *out = (int)x;
    return 0;
}
