/* CSV cells as the csv module writes them: see cells.h. */

#include "cells.h"

#include <string.h>

int csv_grow_to(Buffer *buf, size_t extra) {
    size_t cap = buf->cap ? buf->cap : 65536;
    while (cap < buf->len + extra) {
        cap *= 2;
    }
    /* The raw allocator: json_rows.c writes without the GIL held. */
    char *data = PyMem_RawRealloc(buf->data, cap);
    if (data == NULL) {
        return -1;
    }
    buf->data = data;
    buf->cap = cap;
    return 0;
}

int csv_is_trigger(char c) {
    return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r';
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* [+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)? over the whole text, ASCII digits. */
int csv_plain_number(const char *s, Py_ssize_t n) {
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

int csv_has_non_ascii(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80) {
            return 1;
        }
    }
    return 0;
}

/* Appends a cell's text; quoting as the csv module's QUOTE_MINIMAL does, decided on the
 * cell as written: with `'` as the delimiter, the formula prefix itself needs quotes. */
int csv_put_text(Buffer *buf, const char *s, Py_ssize_t n, char delimiter, int formula) {
    int quote = formula && delimiter == '\'';
    for (Py_ssize_t i = 0; i < n && !quote; i++) {
        char c = s[i];
        if (c == delimiter || c == '"' || c == '\r' || c == '\n') {
            quote = 1;
            break;
        }
    }
    if (!quote) {
        if (formula && csv_put(buf, "'", 1) < 0) {
            return -1;
        }
        return csv_put(buf, s, (size_t)n);
    }
    if (csv_grow(buf, (size_t)n * 2 + 3) < 0) {
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

int csv_put_string(Buffer *buf, const char *s, Py_ssize_t n, char delimiter, int escape) {
    int formula = 0;
    if (escape && n > 0 && csv_is_trigger(s[0])) {
        if (csv_has_non_ascii(s, n)) {
            return 1;
        }
        formula = !csv_plain_number(s, n);
    }
    return csv_put_text(buf, s, n, delimiter, formula);
}
