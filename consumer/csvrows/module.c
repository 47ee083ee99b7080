/* consumer._csvrows: CSV rows in C, from decoded records (rows.c) or straight from a
 * message's JSON text (json_rows.c). */

#include "csvrows.h"

static PyMethodDef methods[] = {
    {"format_rows", csv_format_rows, METH_VARARGS,
     "format_rows(records, columns, delimiter, escape_formulas) -> bytes | None"},
    {"format_json", csv_format_json, METH_VARARGS,
     "format_json(text, columns, delimiter, escape_formulas) -> (bytes, int) | None"},
    {"format_jsonl", csv_format_jsonl, METH_VARARGS,
     "format_jsonl(text, columns, prefixes) -> (bytes, int) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_csvrows", "CSV rows of a batch of records, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__csvrows(void) { return PyModule_Create(&module); }
