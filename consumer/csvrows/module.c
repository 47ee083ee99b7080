/* consumer._csvrows: CSV rows in C, from decoded records (rows.c) or straight from a
 * message's JSON text (json_rows.c); records from Kafka's record batches (kafka_batches.c). */

#include "csvrows.h"

static PyMethodDef methods[] = {
    {"format_rows", csv_format_rows, METH_VARARGS,
     "format_rows(records, columns, delimiter, escape_formulas) -> bytes | None"},
    {"format_json", csv_format_json, METH_VARARGS,
     "format_json(text, columns, delimiter, escape_formulas) -> (bytes, int) | None"},
    {"format_jsonl", csv_format_jsonl, METH_VARARGS,
     "format_jsonl(text, columns, prefixes) -> (bytes, int) | None"},
    {"batch_records", kafka_batch_records, METH_VARARGS,
     "batch_records(data, pos, start, end, key) -> (list[(offset, value)], pos)"},
    {"crc32c", kafka_crc32c, METH_VARARGS, "crc32c(data, hardware) -> int"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_csvrows", "CSV rows and JSON lines of records, and records of Kafka batches, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__csvrows(void) {
    kafka_batches_init();
    return PyModule_Create(&module);
}
