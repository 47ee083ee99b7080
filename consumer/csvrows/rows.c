/* CSV rows of a batch of records, in C: the column formatter's common case.
 *
 * format_rows(records, columns, delimiter, escape_formulas) -> bytes | None
 *
 * records: a list of dicts; columns: a tuple of fields (two or more), a dotted one found
 * as consumer/fields.py finds it; delimiter: one ASCII
 * character. Returns the rows as UTF-8, each ending in CRLF, exactly as the csv module
 * writes the contract's cells (tests/test_csv_writer.py holds it to that byte for byte),
 * or None when a value needs the Python path: a float outside the magnitudes where
 * repr() prints JSON's notation, a value that is not a str (a number's text included),
 * int, float, bool or null, or a formula-like string with non-ASCII text (Python's \d
 * matches other digits).
 */

#include <math.h>
#include <string.h>

#include "csvrows.h"

/* One cell. Returns 0 when written, 1 when the Python path must take the batch, -1 on
 * error. */
static int put_cell(Buffer *buf, PyObject *value, char delimiter, int escape) {
    if (value == NULL || value == Py_None) {
        return 0;
    }
    /* Every text, numbers too, goes through put_text: the delimiter may be a digit, a
     * letter or a dot. */
    if (value == Py_True) {
        return csv_put_text(buf, "true", 4, delimiter, 0);
    }
    if (value == Py_False) {
        return csv_put_text(buf, "false", 5, delimiter, 0);
    }
    /* A str subclass too: consumer.json_text.JsonNumber, a number's text (a plain
     * number, so formula escaping leaves it as it is). */
    if (PyUnicode_Check(value)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(value, &n);
        if (s == NULL) {
            return -1;
        }
        return csv_put_string(buf, s, n, delimiter, escape);
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (number == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (!overflow) {
            char text[32];
            int len = snprintf(text, sizeof text, "%lld", number);
            return csv_put_text(buf, text, len, delimiter, 0);
        }
        PyObject *str = PyObject_Str(value);
        if (str == NULL) {
            return -1;
        }
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(str, &n);
        int status = s == NULL ? -1 : csv_put_text(buf, s, n, delimiter, 0);
        Py_DECREF(str);
        return status;
    }
    if (PyFloat_CheckExact(value)) {
        double number = PyFloat_AS_DOUBLE(value);
        double magnitude = fabs(number);
        /* Where repr() and JSON print the same digits in the same notation. */
        if (!(magnitude == 0.0 || (magnitude >= 1e-4 && magnitude < 1e16))) {
            return 1;
        }
        char *text = PyOS_double_to_string(number, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL) {
            return -1;
        }
        int status = csv_put_text(buf, text, (Py_ssize_t)strlen(text), delimiter, 0);
        PyMem_Free(text);
        return status;
    }
    return 1;
}

/* The record's value for a column: under its exact key, else (a dotted field, `parts`
 * its pieces) by walking nested dicts (consumer/fields.py). NULL when missing or on an
 * error (then an exception is set). */
static PyObject *lookup(PyObject *record, PyObject *field, PyObject *parts) {
    PyObject *value = PyDict_GetItemWithError(record, field);
    if (value != NULL || PyErr_Occurred() || parts == Py_None) {
        return value;
    }
    PyObject *node = record;
    Py_ssize_t count = PyList_GET_SIZE(parts);
    for (Py_ssize_t i = 0; i < count && node != NULL; i++) {
        if (!PyDict_CheckExact(node)) {
            return NULL;
        }
        node = PyDict_GetItemWithError(node, PyList_GET_ITEM(parts, i));
    }
    return node;
}

PyObject *csv_format_rows(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *records, *columns;
    const char *delimiter_text;
    Py_ssize_t delimiter_len;
    int escape;
    if (!PyArg_ParseTuple(args, "O!O!s#p", &PyList_Type, &records, &PyTuple_Type, &columns,
                          &delimiter_text, &delimiter_len, &escape)) {
        return NULL;
    }
    if (delimiter_len != 1 || (unsigned char)delimiter_text[0] >= 0x80) {
        Py_RETURN_NONE; /* a non-ASCII delimiter: the Python path */
    }
    char delimiter = delimiter_text[0];
    Py_ssize_t width = PyTuple_GET_SIZE(columns);
    /* Each dotted field's pieces, None for the others. */
    PyObject *paths = PyTuple_New(width);
    if (paths == NULL) {
        return NULL;
    }
    for (Py_ssize_t c = 0; c < width; c++) {
        PyObject *field = PyTuple_GET_ITEM(columns, c);
        PyObject *parts = NULL;
        if (PyUnicode_Check(field) && PyUnicode_FindChar(field, '.', 0, PyUnicode_GET_LENGTH(field), 1) >= 0) {
            PyObject *dot = PyUnicode_FromString(".");
            parts = dot == NULL ? NULL : PyUnicode_Split(field, dot, -1);
            Py_XDECREF(dot);
            if (parts == NULL) {
                Py_DECREF(paths);
                return NULL;
            }
        } else {
            parts = Py_NewRef(Py_None);
        }
        PyTuple_SET_ITEM(paths, c, parts);
    }
    Buffer buf = {NULL, 0, 0};
    PyObject *result = NULL;
    int status = 0; /* 0 written, 1 the Python path, -1 an error */
    Py_ssize_t count = PyList_GET_SIZE(records);
    for (Py_ssize_t r = 0; r < count && status == 0; r++) {
        PyObject *record = PyList_GET_ITEM(records, r);
        if (!PyDict_Check(record)) {
            status = 1;
            break;
        }
        for (Py_ssize_t c = 0; c < width && status == 0; c++) {
            if (c > 0 && csv_put(&buf, &delimiter, 1) < 0) {
                status = -1;
                break;
            }
            PyObject *value = lookup(record, PyTuple_GET_ITEM(columns, c), PyTuple_GET_ITEM(paths, c));
            status = value == NULL && PyErr_Occurred() ? -1
                                                        : put_cell(&buf, value, delimiter, escape);
        }
        if (status == 0 && csv_put(&buf, "\r\n", 2) < 0) {
            status = -1;
        }
    }
    if (status == 0) {
        result = PyBytes_FromStringAndSize(buf.data ? buf.data : "", (Py_ssize_t)buf.len);
    } else if (status == 1) {
        result = Py_NewRef(Py_None);
    } else if (!PyErr_Occurred()) {
        PyErr_NoMemory(); /* the buffer could not grow */
    }
    PyMem_RawFree(buf.data);
    Py_DECREF(paths);
    return result;
}
