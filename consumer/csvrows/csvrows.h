/* The extension's functions: rows from records (rows.c), rows and lines from text
 * (json_rows.c), records from Kafka's record batches (kafka_batches.c). */

#ifndef CSVROWS_H
#define CSVROWS_H

#include "cells.h"

PyObject *csv_format_rows(PyObject *self, PyObject *args);
PyObject *csv_format_json(PyObject *self, PyObject *args);
PyObject *csv_format_jsonl(PyObject *self, PyObject *args);
PyObject *kafka_batch_records(PyObject *self, PyObject *args);
PyObject *kafka_crc32c(PyObject *self, PyObject *args);
void kafka_batches_init(void);

#endif
