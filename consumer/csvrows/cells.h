/* CSV cells as the csv module writes them (QUOTE_MINIMAL, CRLF) into a growing buffer:
 * what both formatters of the extension share. */

#ifndef CSVROWS_CELLS_H
#define CSVROWS_CELLS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} Buffer;

/* Makes room for `extra` more bytes: the slow half of csv_grow. */
int csv_grow_to(Buffer *buf, size_t extra);

/* Room for `extra` more bytes; -1, with no exception set, when memory runs out. The
 * data is freed with PyMem_RawFree. Inline: it runs for every cell. */
static inline int csv_grow(Buffer *buf, size_t extra) {
    return buf->len + extra <= buf->cap ? 0 : csv_grow_to(buf, extra);
}

static inline int csv_put(Buffer *buf, const char *text, size_t len) {
    if (len == 0) {
        return 0; /* the buffer may have no data yet: memcpy(NULL, ..., 0) is undefined */
    }
    if (csv_grow(buf, len) < 0) {
        return -1;
    }
    memcpy(buf->data + buf->len, text, len);
    buf->len += len;
    return 0;
}

/* The characters a spreadsheet may take as the start of a formula. */
int csv_is_trigger(char c);

/* [+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)? over the whole text, ASCII digits. */
int csv_plain_number(const char *s, Py_ssize_t n);

int csv_has_non_ascii(const char *s, Py_ssize_t n);

/* Appends a cell's text, quoted as QUOTE_MINIMAL quotes it, with `'` before it when
 * `formula`. 0, or -1 on error. */
int csv_put_text(Buffer *buf, const char *s, Py_ssize_t n, char delimiter, int formula);

/* Appends a string cell: formula escaping when `escape` asks for it. 1 when the Python
 * path must take it (a formula-like text with non-ASCII characters, where Python's \d
 * matches other digits), 0 when written, -1 on error. */
int csv_put_string(Buffer *buf, const char *s, Py_ssize_t n, char delimiter, int escape);

#endif
