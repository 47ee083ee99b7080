/* The extension's two functions, each in its own file. */

#ifndef CSVROWS_H
#define CSVROWS_H

#include "cells.h"

PyObject *csv_format_rows(PyObject *self, PyObject *args);
PyObject *csv_format_json(PyObject *self, PyObject *args);

#endif
