/* CSV rows of a batch of records, in C: the column formatter's common case.
 *
 * format_rows(records, columns, delimiter, escape_formulas) -> bytes | None
 *
 * records: a list of dicts; columns: a tuple of str (two or more); delimiter: one ASCII
 * character. Returns the rows as UTF-8, each ending in CRLF, exactly as the csv module
 * writes the contract's cells (tests/test_csv_writer.py holds it to that byte for byte),
 * or None when a value needs the Python path: a float outside the magnitudes where
 * repr() prints JSON's notation, a value that is not a str, int, float, bool or null, or
 * a formula-like string with non-ASCII text (Python's \d matches other digits).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} Buffer;

static int grow(Buffer *buf, size_t extra) {
    if (buf->len + extra <= buf->cap) {
        return 0;
    }
    size_t cap = buf->cap ? buf->cap : 65536;
    while (cap < buf->len + extra) {
        cap *= 2;
    }
    char *data = PyMem_Realloc(buf->data, cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buf->data = data;
    buf->cap = cap;
    return 0;
}

static int put(Buffer *buf, const char *text, size_t len) {
    if (grow(buf, len) < 0) {
        return -1;
    }
    memcpy(buf->data + buf->len, text, len);
    buf->len += len;
    return 0;
}

static int is_trigger(char c) {
    return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r';
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* [+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)? over the whole text, ASCII digits. */
static int plain_number(const char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        i++;
    }
    Py_ssize_t whole = 0, fraction = 0;
    while (i < n && is_digit(s[i])) {
        i++;
        whole++;
    }
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && is_digit(s[i])) {
            i++;
            fraction++;
        }
    }
    if (whole == 0 && fraction == 0) {
        return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        Py_ssize_t exponent = 0;
        while (i < n && is_digit(s[i])) {
            i++;
            exponent++;
        }
        if (exponent == 0) {
            return 0;
        }
    }
    return i == n;
}

static int has_non_ascii(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80) {
            return 1;
        }
    }
    return 0;
}

/* Appends a cell's text; quoting as the csv module's QUOTE_MINIMAL does. 1 = fallback. */
static int put_text(Buffer *buf, const char *s, Py_ssize_t n, char delimiter, int formula) {
    int quote = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == delimiter || c == '"' || c == '\r' || c == '\n') {
            quote = 1;
            break;
        }
    }
    if (!quote) {
        if (formula && put(buf, "'", 1) < 0) {
            return -1;
        }
        return put(buf, s, (size_t)n);
    }
    if (grow(buf, (size_t)n * 2 + 3) < 0) {
        return -1;
    }
    char *out = buf->data + buf->len;
    *out++ = '"';
    if (formula) {
        *out++ = '\'';
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] == '"') {
            *out++ = '"';
        }
        *out++ = s[i];
    }
    *out++ = '"';
    buf->len = (size_t)(out - buf->data);
    return 0;
}

/* One cell. Returns 0 when written, 1 when the Python path must take the batch, -1 on
 * error. */
static int put_cell(Buffer *buf, PyObject *value, char delimiter, int escape) {
    if (value == NULL || value == Py_None) {
        return 0;
    }
    /* Every text, numbers too, goes through put_text: the delimiter may be a digit, a
     * letter or a dot. */
    if (value == Py_True) {
        return put_text(buf, "true", 4, delimiter, 0);
    }
    if (value == Py_False) {
        return put_text(buf, "false", 5, delimiter, 0);
    }
    if (PyUnicode_CheckExact(value)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(value, &n);
        if (s == NULL) {
            return -1;
        }
        int formula = 0;
        if (escape && n > 0 && is_trigger(s[0])) {
            if (has_non_ascii(s, n)) {
                return 1;
            }
            formula = !plain_number(s, n);
        }
        return put_text(buf, s, n, delimiter, formula);
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
            return put_text(buf, text, len, delimiter, 0);
        }
        PyObject *str = PyObject_Str(value);
        if (str == NULL) {
            return -1;
        }
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(str, &n);
        int status = s == NULL ? -1 : put_text(buf, s, n, delimiter, 0);
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
        int status = put_text(buf, text, (Py_ssize_t)strlen(text), delimiter, 0);
        PyMem_Free(text);
        return status;
    }
    return 1;
}

static PyObject *format_rows(PyObject *self, PyObject *args) {
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
    Buffer buf = {NULL, 0, 0};
    Py_ssize_t count = PyList_GET_SIZE(records);
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *record = PyList_GET_ITEM(records, r);
        if (!PyDict_Check(record)) {
            PyMem_Free(buf.data);
            Py_RETURN_NONE;
        }
        for (Py_ssize_t c = 0; c < width; c++) {
            if (c > 0 && put(&buf, &delimiter, 1) < 0) {
                PyMem_Free(buf.data);
                return NULL;
            }
            PyObject *value = PyDict_GetItemWithError(record, PyTuple_GET_ITEM(columns, c));
            if (value == NULL && PyErr_Occurred()) {
                PyMem_Free(buf.data);
                return NULL;
            }
            int status = put_cell(&buf, value, delimiter, escape);
            if (status != 0) {
                PyMem_Free(buf.data);
                if (status < 0) {
                    return NULL;
                }
                Py_RETURN_NONE;
            }
        }
        if (put(&buf, "\r\n", 2) < 0) {
            PyMem_Free(buf.data);
            return NULL;
        }
    }
    PyObject *result = PyBytes_FromStringAndSize(buf.data ? buf.data : "", (Py_ssize_t)buf.len);
    PyMem_Free(buf.data);
    return result;
}

static PyMethodDef methods[] = {
    {"format_rows", format_rows, METH_VARARGS,
     "format_rows(records, columns, delimiter, escape_formulas) -> bytes | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_csvrows", "CSV rows of a batch of records, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__csvrows(void) { return PyModule_Create(&module); }
