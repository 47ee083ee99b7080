/* CSV rows and JSON Lines straight from a message's JSON text, in C: the hot path of
 * CSV and JSON Lines exports.
 *
 * format_json(text, columns, delimiter, escape_formulas) -> (bytes, int) | None
 * format_jsonl(text, columns, prefixes) -> (bytes, int) | None
 *
 * columns are fields: a dotted one takes the key of that exact name, else walks nested
 * objects by its dots (consumer/fields.py, the reference); prefixes are each column's
 * `{"label":` or `,"label":`. A line writes numbers as their text, strings re-escaped as
 * orjson escapes them, missing as null (the Python writer, consumer/writers/jsonl.py).
 *
 * text: a message value; the rest as format_rows. When the text is a JSON array of
 * objects, or one object, within the subset below, returns the rows (the bytes decoding
 * it with consumer.batches and formatting the records writes; tests/test_csv_json.py
 * holds it to that) and the number of records. Decoding JSON into Python objects only
 * to read them back was most of a CSV export's CPU time. A number's cell is its text,
 * copied as it is.
 *
 * Returns None, and the Python path takes the message, for anything outside the subset:
 * text that is not valid JSON (the decoder then names the error), items that are not
 * objects (counted as bad records there), keys with escapes, numbers that might be
 * infinite as doubles (orjson refuses those; the Python path decides), objects or arrays
 * as column values, nesting past MAX_DEPTH, and the cases format_rows leaves to Python.
 * What it accepts it validates as strictly as orjson: UTF-8, control characters, escapes
 * and surrogate pairs, the number grammar, nothing after the document.
 *
 * The text is read without the GIL held, so the worker's reply thread runs meanwhile.
 */

#include <stdint.h>
#include <string.h>

#include "csvrows.h"

#define MAX_DEPTH 64
#define LONG_NUMBER 300 /* a number with no exponent this long is finite as a double */
#define MAX_EXPONENT 308   /* 1e308 is a double; 1e309 is infinity */

enum { OK = 0, DECLINE = 1, NO_MEMORY = -1, CLOSED = 2 /* a container's end was read */ };

typedef enum {
    MISSING,
    JSON_NULL,
    JSON_TRUE,
    JSON_FALSE,
    NUMBER,
    TEXT,
    ESCAPED,
} Kind;

typedef struct {
    Kind kind;
    int quote;         /* a TEXT holding the delimiter */
    const char *start; /* a string's without its quotes */
    const char *end;
} Value;

typedef struct {
    const char *name;
    Py_ssize_t len;
    int dotted; /* the field holds a dot: it may walk nested objects */
    const char *prefix; /* JSON Lines: `{"label":` or `,"label":` */
    Py_ssize_t prefix_len;
} Column;

#define MAX_PATH 512 /* bytes of a dotted field's walk; longer ones are declined */

typedef struct {
    const char *p;
    const char *end;
    const Column *columns;
    Py_ssize_t width;
    Py_ssize_t hint; /* where the next key is likely to be: records keep their order */
    Value *values;   /* each column's value under its exact key */
    Value *walked;   /* a dotted column's value found by walking nested objects */
    int has_dotted;
    int jsonl;       /* JSON Lines rather than CSV rows */
    char delimiter;
    int escape;
    int quote_numbers;  /* the delimiter is a digit, sign, point or exponent mark */
    int quote_booleans; /* the delimiter is a letter of true or false */
    uint64_t delimiter_word;
    unsigned char plain[256]; /* plain_byte, with the delimiter taken out */
    Buffer out;
    Buffer scratch; /* a string with escapes, decoded */
    Py_ssize_t records;
} Parser;

/* Bytes of a string that need no second look: printable ASCII but the quote and the
 * backslash. */
static unsigned char plain_byte[256];

static void init_tables(void) {
    for (int b = 0x20; b < 0x80; b++) {
        plain_byte[b] = b != '"' && b != '\\';
    }
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether a byte of the word is below n (n <= 128), or is zero: bit tricks that look at
 * eight bytes at once, so a string's ordinary stretches are skipped a word at a time. */
static inline uint64_t has_less(uint64_t word, unsigned n) {
    return (word - ONES * n) & ~word & HIGHS;
}
static inline uint64_t has_zero(uint64_t word) { return has_less(word, 1); }

static inline int word_is_plain(const Parser *ps, const unsigned char *p) {
    uint64_t word;
    memcpy(&word, p, sizeof word);
    return !((word & HIGHS) | has_less(word, 0x20) | has_zero(word ^ (ONES * '"')) |
             has_zero(word ^ (ONES * '\\')) | has_zero(word ^ ps->delimiter_word));
}

static void skip_ws(Parser *ps) {
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t')) {
        ps->p++;
    }
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* One UTF-8 sequence at p (its lead byte >= 0x80), as RFC 3629 allows it: no overlong
 * forms, no surrogates, nothing past U+10FFFF. Its length, or 0 when invalid. */
static int utf8_length(const unsigned char *p, const unsigned char *end) {
    unsigned char b = p[0];
    int len;
    unsigned char low = 0x80, high = 0xBF; /* the second byte's range */
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        if (b == 0xE0) {
            low = 0xA0;
        } else if (b == 0xED) {
            high = 0x9F;
        }
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        if (b == 0xF0) {
            low = 0x90;
        } else if (b == 0xF4) {
            high = 0x8F;
        }
    } else {
        return 0;
    }
    if (end - p < len || p[1] < low || p[1] > high) {
        return 0;
    }
    for (int i = 2; i < len; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }
    return len;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* The UTF-16 code unit a \u escape at p names (its four hex digits), or -1. */
static long unicode_escape(const char *p, const char *end) {
    if (end - p < 6 || p[0] != '\\' || p[1] != 'u') {
        return -1;
    }
    long unit = 0;
    for (int i = 2; i < 6; i++) {
        int digit = hex_value(p[i]);
        if (digit < 0) {
            return -1;
        }
        unit = unit * 16 + digit;
    }
    return unit;
}

/* The length of the escape at p (its backslash), or 0 where orjson would fail: an
 * unknown escape, a lone or misordered surrogate. */
static int escape_length(const char *p, const char *end) {
    if (end - p < 2) {
        return 0;
    }
    if (p[1] != 'u') {
        return p[1] != '\0' && strchr("\"\\/bfnrt", p[1]) ? 2 : 0;
    }
    long unit = unicode_escape(p, end);
    if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF)) {
        return 0;
    }
    if (unit < 0xD800 || unit > 0xDBFF) {
        return 6;
    }
    long low = unicode_escape(p + 6, end);
    return low >= 0xDC00 && low <= 0xDFFF ? 12 : 0;
}

/* A string at the cursor's quote; its span without the quotes, and whether it holds
 * escapes. */
static int scan_string(Parser *ps, Value *value) {
    const unsigned char *p = (const unsigned char *)ps->p + 1;
    const unsigned char *end = (const unsigned char *)ps->end;
    value->kind = TEXT;
    value->quote = 0;
    value->start = (const char *)p;
    for (;;) {
        while (end - p >= 8 && word_is_plain(ps, p)) {
            p += 8;
        }
        while (p < end && ps->plain[*p]) {
            p++;
        }
        if (p >= end) {
            return DECLINE;
        }
        if (*p == '"') {
            break;
        }
        if (*p == '\\') {
            int len = escape_length((const char *)p, (const char *)end);
            if (len == 0) {
                return DECLINE;
            }
            value->kind = ESCAPED;
            p += len;
        } else if (*p >= 0x80) {
            int len = utf8_length(p, end);
            if (len == 0) {
                return DECLINE;
            }
            p += len;
        } else if (*p == (unsigned char)ps->delimiter && *p >= 0x20) {
            value->quote = 1;
            p++;
        } else {
            return DECLINE; /* a control character */
        }
    }
    value->end = (const char *)p;
    ps->p = (const char *)p + 1;
    return OK;
}

/* A number at the cursor, by JSON's grammar, declined where it might be infinite as a
 * double: under 10 ** (whole digits +/- exponent) <= 1e308 it is finite; underflow is
 * 0.0, which orjson takes. */
static int scan_number(Parser *ps, Value *value) {
    const char *p = ps->p;
    const char *end = ps->end;
    value->kind = NUMBER;
    value->start = p;
    if (p < end && *p == '-') {
        p++;
    }
    const char *whole = p;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && is_digit(*p)) {
        while (p < end && is_digit(*p)) {
            p++;
        }
    } else {
        return DECLINE;
    }
    Py_ssize_t whole_digits = p - whole;
    if (p < end && *p == '.') {
        const char *fraction = ++p;
        while (p < end && is_digit(*p)) {
            p++;
        }
        if (p == fraction) {
            return DECLINE;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        int negative = ++p < end && *p == '-';
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        const char *digits = p;
        int exponent = 0;
        while (p < end && is_digit(*p) && p - digits < 4) {
            exponent = exponent * 10 + (*p++ - '0');
        }
        Py_ssize_t magnitude = whole_digits + (negative ? -exponent : exponent);
        if (p == digits || (p < end && is_digit(*p)) || magnitude > MAX_EXPONENT) {
            return DECLINE;
        }
    } else if (p - value->start > LONG_NUMBER) {
        return DECLINE;
    }
    value->end = ps->p = p;
    return OK;
}

static int scan_literal(Parser *ps, const char *word, size_t len) {
    if ((size_t)(ps->end - ps->p) < len || memcmp(ps->p, word, len) != 0) {
        return DECLINE;
    }
    ps->p += len;
    return OK;
}

static int skip_value(Parser *ps, int depth);

/* Past a container's opening: CLOSED when it is empty. */
static int open_container(Parser *ps, char close) {
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return CLOSED;
    }
    return OK;
}

/* Past a member's value: OK at the next member, CLOSED past the container's end. */
static int next_member(Parser *ps, char close) {
    skip_ws(ps);
    if (ps->p >= ps->end) {
        return DECLINE;
    }
    if (*ps->p == close) {
        ps->p++;
        return CLOSED;
    }
    if (*ps->p != ',') {
        return DECLINE;
    }
    ps->p++;
    skip_ws(ps);
    return OK;
}

/* A key and its colon, the cursor left at the value. */
static int scan_key(Parser *ps, Value *key) {
    int status;
    if (ps->p >= ps->end || *ps->p != '"' || (status = scan_string(ps, key)) != OK) {
        return DECLINE;
    }
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != ':') {
        return DECLINE;
    }
    ps->p++;
    skip_ws(ps);
    return OK;
}

static int skip_container(Parser *ps, int depth, char close, int keyed) {
    if (depth > MAX_DEPTH) {
        return DECLINE;
    }
    int status = open_container(ps, close);
    while (status == OK) {
        Value key;
        if ((keyed && (status = scan_key(ps, &key)) != OK) ||
            (status = skip_value(ps, depth + 1)) != OK) {
            return status;
        }
        status = next_member(ps, close);
    }
    return status == CLOSED ? OK : status;
}

/* Any JSON value the subset holds, not kept: the keys no column asks for. */
static int skip_value(Parser *ps, int depth) {
    if (ps->p >= ps->end) {
        return DECLINE;
    }
    Value ignored;
    switch (*ps->p) {
    case '"':
        return scan_string(ps, &ignored);
    case '{':
        return skip_container(ps, depth, '}', 1);
    case '[':
        return skip_container(ps, depth, ']', 0);
    case 't':
        return scan_literal(ps, "true", 4);
    case 'f':
        return scan_literal(ps, "false", 5);
    case 'n':
        return scan_literal(ps, "null", 4);
    default:
        return scan_number(ps, &ignored);
    }
}

/* A column's value: the kinds a cell is written from here. */
static int scan_column_value(Parser *ps, Value *value) {
    if (ps->p >= ps->end) {
        return DECLINE;
    }
    switch (*ps->p) {
    case '"':
        return scan_string(ps, value);
    case 't':
        value->kind = JSON_TRUE;
        return scan_literal(ps, "true", 4);
    case 'f':
        value->kind = JSON_FALSE;
        return scan_literal(ps, "false", 5);
    case 'n':
        value->kind = JSON_NULL;
        return scan_literal(ps, "null", 4);
    case '{':
    case '[':
        return DECLINE; /* its cell is orjson's compact text */
    default:
        return scan_number(ps, value);
    }
}

static Py_ssize_t find_column(Parser *ps, const char *key, Py_ssize_t len) {
    Py_ssize_t c = ps->hint;
    for (Py_ssize_t tried = 0; tried < ps->width; tried++) {
        const Column *column = &ps->columns[c];
        if (column->len == len && (len == 0 || column->name[0] == key[0]) &&
            memcmp(column->name, key, (size_t)len) == 0) {
            ps->hint = c + 1 == ps->width ? 0 : c + 1;
            return c;
        }
        c = c + 1 == ps->width ? 0 : c + 1;
    }
    return -1;
}

/* Whether some dotted field goes on past `path`: starts with `path` and a dot. */
static int leads_on(const Parser *ps, const char *path, Py_ssize_t n) {
    for (Py_ssize_t c = 0; c < ps->width; c++) {
        const Column *column = &ps->columns[c];
        if (column->dotted && column->len > n && column->name[n] == '.' &&
            memcmp(column->name, path, (size_t)n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The dotted column whose whole field is `path`, or -1. */
static Py_ssize_t ends_at(const Parser *ps, const char *path, Py_ssize_t n) {
    for (Py_ssize_t c = 0; c < ps->width; c++) {
        const Column *column = &ps->columns[c];
        if (column->dotted && column->len == n && memcmp(column->name, path, (size_t)n) == 0) {
            return c;
        }
    }
    return -1;
}

/* A key met again replaces its value (a dict keeps the last): what was walked below the
 * earlier one is gone. */
static void forget_below(Parser *ps, const char *path, Py_ssize_t n) {
    for (Py_ssize_t c = 0; c < ps->width; c++) {
        const Column *column = &ps->columns[c];
        if (column->dotted && column->len > n && column->name[n] == '.' &&
            memcmp(column->name, path, (size_t)n) == 0) {
            ps->walked[c].kind = MISSING;
        }
    }
}

static int has_dot(const char *s, Py_ssize_t n) { return memchr(s, '.', (size_t)n) != NULL; }

/* The value at the cursor, reached by `path` (n bytes; room for MAX_PATH): a dotted
 * column's value where `path` is its field, nested objects walked where fields go on. */
static int walk_value(Parser *ps, char *path, Py_ssize_t n, int depth) {
    Py_ssize_t leaf = ends_at(ps, path, n);
    int deeper = leads_on(ps, path, n);
    if (deeper) {
        forget_below(ps, path, n);
    }
    if (leaf >= 0) {
        return scan_column_value(ps, &ps->walked[leaf]); /* an object declines */
    }
    if (!deeper || ps->p >= ps->end || *ps->p != '{') {
        return skip_value(ps, depth); /* not an object: nothing below it is found */
    }
    if (depth > MAX_DEPTH) {
        return DECLINE;
    }
    int status = open_container(ps, '}');
    while (status == OK) {
        Value key;
        if ((status = scan_key(ps, &key)) != OK) {
            return status;
        }
        Py_ssize_t len = key.end - key.start;
        if (key.kind == ESCAPED || n + 1 + len > MAX_PATH) {
            return DECLINE;
        }
        if (has_dot(key.start, len)) {
            status = skip_value(ps, depth + 1); /* a walk splits at every dot: never found */
        } else {
            path[n] = '.';
            memcpy(path + n + 1, key.start, (size_t)len);
            status = walk_value(ps, path, n + 1 + len, depth + 1);
        }
        if (status != OK) {
            return status;
        }
        status = next_member(ps, '}');
    }
    return status == CLOSED ? OK : status;
}

/* An object at the cursor: each column's value, the last one where a key repeats (as a
 * dict built from it keeps); a dotted column's from the key of that exact name, else
 * from walking nested objects (consumer/fields.py). */
static int scan_record(Parser *ps) {
    for (Py_ssize_t c = 0; c < ps->width; c++) {
        ps->values[c].kind = MISSING;
        ps->walked[c].kind = MISSING;
    }
    ps->hint = 0;
    char path[MAX_PATH];
    int status = open_container(ps, '}');
    while (status == OK) {
        Value key;
        if ((status = scan_key(ps, &key)) != OK) {
            return status;
        }
        if (key.kind == ESCAPED) {
            return DECLINE;
        }
        Py_ssize_t len = key.end - key.start;
        Py_ssize_t column = find_column(ps, key.start, len);
        int walks = ps->has_dotted && len <= MAX_PATH && !has_dot(key.start, len) &&
                    leads_on(ps, key.start, len);
        if (walks && column >= 0) {
            forget_below(ps, key.start, len);
            status = scan_column_value(ps, &ps->values[column]); /* an object declines */
        } else if (walks) {
            memcpy(path, key.start, (size_t)len);
            status = walk_value(ps, path, len, 1);
        } else {
            status = column < 0 ? skip_value(ps, 1) : scan_column_value(ps, &ps->values[column]);
        }
        if (status != OK) {
            return status;
        }
        status = next_member(ps, '}');
    }
    return status == CLOSED ? OK : status;
}

/* The column's value: under its exact key if the record has one, else as walked. */
static inline const Value *value_of(const Parser *ps, Py_ssize_t c) {
    const Value *exact = &ps->values[c];
    return exact->kind == MISSING && ps->columns[c].dotted ? &ps->walked[c] : exact;
}

/* A text that needs quotes only if it may hold the delimiter. */
static inline int put_plain(Parser *ps, const char *s, Py_ssize_t n, int may_hold_delimiter) {
    return may_hold_delimiter ? csv_put_text(&ps->out, s, n, ps->delimiter, 0)
                              : csv_put(&ps->out, s, (size_t)n);
}

static char *put_utf8(char *out, long code) {
    if (code < 0x80) {
        *out++ = (char)code;
    } else if (code < 0x800) {
        *out++ = (char)(0xC0 | (code >> 6));
        *out++ = (char)(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
        *out++ = (char)(0xE0 | (code >> 12));
        *out++ = (char)(0x80 | ((code >> 6) & 0x3F));
        *out++ = (char)(0x80 | (code & 0x3F));
    } else {
        *out++ = (char)(0xF0 | (code >> 18));
        *out++ = (char)(0x80 | ((code >> 12) & 0x3F));
        *out++ = (char)(0x80 | ((code >> 6) & 0x3F));
        *out++ = (char)(0x80 | (code & 0x3F));
    }
    return out;
}

/* A string with escapes, decoded into the scratch buffer (never longer than its escaped
 * text); its length, or -1 when memory runs out. */
static Py_ssize_t decode_escaped(Parser *ps, const Value *value) {
    ps->scratch.len = 0;
    if (csv_grow(&ps->scratch, (size_t)(value->end - value->start)) < 0) {
        return -1;
    }
    char *out = ps->scratch.data;
    for (const char *p = value->start; p < value->end; p++) {
        if (*p != '\\') {
            *out++ = *p;
            continue;
        }
        switch (*++p) {
        case 'b':
            *out++ = '\b';
            break;
        case 'f':
            *out++ = '\f';
            break;
        case 'n':
            *out++ = '\n';
            break;
        case 'r':
            *out++ = '\r';
            break;
        case 't':
            *out++ = '\t';
            break;
        case 'u': {
            long code = unicode_escape(p - 1, value->end);
            p += 4;
            if (code >= 0xD800 && code <= 0xDBFF) { /* scan_string saw its low half */
                long low = unicode_escape(p + 1, value->end);
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                p += 6;
            }
            out = put_utf8(out, code);
            break;
        }
        default: /* " \ / */
            *out++ = *p;
        }
    }
    return out - ps->scratch.data;
}

/* A string with escapes, decoded, then written as a CSV cell. */
static int put_escaped(Parser *ps, const Value *value) {
    Py_ssize_t len = decode_escaped(ps, value);
    if (len < 0) {
        return NO_MEMORY;
    }
    return csv_put_string(&ps->out, ps->scratch.data, len, ps->delimiter, ps->escape);
}

/* A decoded string as JSON, escaped as orjson escapes it: the quote, the backslash and
 * control characters; everything else (UTF-8 included) as it is. */
static int put_json_string(Parser *ps, const char *s, Py_ssize_t n) {
    static const char hex[] = "0123456789abcdef";
    if (csv_grow(&ps->out, (size_t)n * 6 + 2) < 0) {
        return NO_MEMORY;
    }
    char *out = ps->out.data + ps->out.len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *out++ = (char)c;
            break;
        case '\b':
            *out++ = 'b';
            break;
        case '\f':
            *out++ = 'f';
            break;
        case '\n':
            *out++ = 'n';
            break;
        case '\r':
            *out++ = 'r';
            break;
        case '\t':
            *out++ = 't';
            break;
        default:
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 0xF];
        }
    }
    *out++ = '"';
    ps->out.len = (size_t)(out - ps->out.data);
    return OK;
}

/* A record as one JSON Lines object: each column's label (its prefix) and value. */
static int put_line(Parser *ps) {
    for (Py_ssize_t c = 0; c < ps->width; c++) {
        const Column *column = &ps->columns[c];
        const Value *value = value_of(ps, c);
        int status = OK;
        if (csv_put(&ps->out, column->prefix, (size_t)column->prefix_len) < 0) {
            return NO_MEMORY;
        }
        switch (value->kind) {
        case MISSING:
        case JSON_NULL:
            status = csv_put(&ps->out, "null", 4);
            break;
        case JSON_TRUE:
            status = csv_put(&ps->out, "true", 4);
            break;
        case JSON_FALSE:
            status = csv_put(&ps->out, "false", 5);
            break;
        case NUMBER: /* its text, as written */
            status = csv_put(&ps->out, value->start, (size_t)(value->end - value->start));
            break;
        case TEXT: /* no escapes, no control characters: as orjson writes it */
            status = csv_put(&ps->out, "\"", 1) < 0 ||
                             csv_put(&ps->out, value->start, (size_t)(value->end - value->start)) <
                                 0 ||
                             csv_put(&ps->out, "\"", 1) < 0
                         ? NO_MEMORY
                         : OK;
            break;
        case ESCAPED: {
            Py_ssize_t len = decode_escaped(ps, value);
            status = len < 0 ? NO_MEMORY : put_json_string(ps, ps->scratch.data, len);
            break;
        }
        }
        if (status != OK) {
            return status < 0 ? NO_MEMORY : status;
        }
    }
    return csv_put(&ps->out, "}\n", 2) < 0 ? NO_MEMORY : OK;
}

static int put_row(Parser *ps) {
    for (Py_ssize_t c = 0; c < ps->width; c++) {
        const Value *value = value_of(ps, c);
        int status = OK;
        if (c > 0 && csv_put(&ps->out, &ps->delimiter, 1) < 0) {
            return NO_MEMORY;
        }
        switch (value->kind) {
        case MISSING:
        case JSON_NULL:
            break;
        case JSON_TRUE:
            status = put_plain(ps, "true", 4, ps->quote_booleans);
            break;
        case JSON_FALSE:
            status = put_plain(ps, "false", 5, ps->quote_booleans);
            break;
        case NUMBER: /* its text, as written: the contract's cell */
            status = put_plain(ps, value->start, value->end - value->start, ps->quote_numbers);
            break;
        case TEXT: {
            Py_ssize_t len = value->end - value->start;
            int formula = ps->escape && len > 0 && csv_is_trigger(value->start[0]);
            status = value->quote || formula
                         ? csv_put_string(&ps->out, value->start, len, ps->delimiter, ps->escape)
                         : csv_put(&ps->out, value->start, (size_t)len);
            break;
        }
        case ESCAPED:
            status = put_escaped(ps, value);
            break;
        }
        if (status != OK) {
            return status;
        }
    }
    return csv_put(&ps->out, "\r\n", 2) < 0 ? NO_MEMORY : OK;
}

static int parse_record_and_put(Parser *ps) {
    int status = scan_record(ps);
    if (status == OK) {
        status = ps->jsonl ? put_line(ps) : put_row(ps);
        ps->records++;
    }
    return status;
}

static int parse(Parser *ps) {
    int status;
    skip_ws(ps);
    if (ps->p >= ps->end) {
        return DECLINE;
    }
    if (*ps->p == '{') {
        status = parse_record_and_put(ps);
    } else if (*ps->p == '[') {
        status = open_container(ps, ']');
        while (status == OK) {
            if (ps->p >= ps->end || *ps->p != '{') {
                return DECLINE; /* not an object: a bad record, counted in Python */
            }
            if ((status = parse_record_and_put(ps)) != OK) {
                return status;
            }
            status = next_member(ps, ']');
        }
        status = status == CLOSED ? OK : status;
    } else {
        return DECLINE;
    }
    if (status != OK) {
        return status;
    }
    skip_ws(ps);
    return ps->p == ps->end ? OK : DECLINE;
}

/* The columns' names as UTF-8 (and, for JSON Lines, their prefixes); 1 when they do not
 * suit this path. */
static int read_columns(PyObject *columns, PyObject *prefixes, Column *out, Py_ssize_t width) {
    for (Py_ssize_t c = 0; c < width; c++) {
        PyObject *name = PyTuple_GET_ITEM(columns, c);
        if (!PyUnicode_CheckExact(name)) {
            return 1;
        }
        out[c].name = PyUnicode_AsUTF8AndSize(name, &out[c].len);
        if (out[c].name == NULL) {
            PyErr_Clear(); /* a lone surrogate: no JSON key can match it here */
            return 1;
        }
        out[c].dotted = has_dot(out[c].name, out[c].len);
        if (out[c].dotted && out[c].len > MAX_PATH) {
            return 1;
        }
        for (Py_ssize_t other = 0; other < c; other++) {
            if (out[other].len == out[c].len &&
                memcmp(out[other].name, out[c].name, (size_t)out[c].len) == 0) {
                return 1; /* a repeated column */
            }
        }
        out[c].prefix = NULL;
        out[c].prefix_len = 0;
        if (prefixes != NULL) {
            PyObject *prefix = PyTuple_GET_ITEM(prefixes, c);
            if (!PyBytes_CheckExact(prefix)) {
                return 1;
            }
            out[c].prefix = PyBytes_AS_STRING(prefix);
            out[c].prefix_len = PyBytes_GET_SIZE(prefix);
        }
    }
    return 0;
}

/* Reads the text with the GIL released; (bytes, records), None to decline, or NULL. */
static PyObject *run(Parser *ps, PyObject *columns, PyObject *prefixes, Py_ssize_t text_len) {
    Py_ssize_t width = PyTuple_GET_SIZE(columns);
    if (!plain_byte['a']) {
        init_tables();
    }
    Column *names = PyMem_RawMalloc((size_t)width * sizeof(Column));
    Value *values = PyMem_RawMalloc((size_t)width * 2 * sizeof(Value));
    if (names == NULL || values == NULL) {
        PyMem_RawFree(names);
        PyMem_RawFree(values);
        return PyErr_NoMemory();
    }
    if (read_columns(columns, prefixes, names, width)) {
        PyMem_RawFree(names);
        PyMem_RawFree(values);
        Py_RETURN_NONE;
    }
    ps->columns = names;
    ps->width = width;
    ps->values = values;
    ps->walked = values + width;
    for (Py_ssize_t c = 0; c < width; c++) {
        ps->has_dotted |= names[c].dotted;
    }
    memcpy(ps->plain, plain_byte, sizeof ps->plain);
    ps->plain[(unsigned char)ps->delimiter] = 0;
    /* A delimiter the word test already stops at (a control character, the quote or the
     * backslash) needs no pattern of its own: the quote's stands in. */
    unsigned char own = (unsigned char)ps->delimiter;
    ps->delimiter_word = ONES * (plain_byte[own] ? own : (unsigned char)'"');
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = csv_grow(&ps->out, (size_t)text_len / 2 + 64) < 0 ? NO_MEMORY : parse(ps);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (status == OK) {
        result = Py_BuildValue("(y#n)", ps->out.data ? ps->out.data : "",
                               (Py_ssize_t)ps->out.len, ps->records);
    } else if (status == DECLINE) {
        result = Py_NewRef(Py_None);
    } else {
        PyErr_NoMemory();
    }
    PyMem_RawFree(ps->out.data);
    PyMem_RawFree(ps->scratch.data);
    PyMem_RawFree(names);
    PyMem_RawFree(values);
    return result;
}

PyObject *csv_format_json(PyObject *self, PyObject *args) {
    (void)self;
    const char *text, *delimiter_text;
    Py_ssize_t text_len, delimiter_len;
    PyObject *columns;
    int escape;
    if (!PyArg_ParseTuple(args, "y#O!s#p", &text, &text_len, &PyTuple_Type, &columns,
                          &delimiter_text, &delimiter_len, &escape)) {
        return NULL;
    }
    Py_ssize_t width = PyTuple_GET_SIZE(columns);
    /* One column: the csv module quotes an empty cell; a non-ASCII delimiter: Python. */
    if (width < 2 || delimiter_len != 1 || (unsigned char)delimiter_text[0] >= 0x80) {
        Py_RETURN_NONE;
    }
    Parser ps = {
        .p = text,
        .end = text + text_len,
        .delimiter = delimiter_text[0],
        .escape = escape,
        .quote_numbers = strchr("0123456789-+.eE", delimiter_text[0]) != NULL,
        .quote_booleans = strchr("truefals", delimiter_text[0]) != NULL,
    };
    return run(&ps, columns, NULL, text_len);
}

PyObject *csv_format_jsonl(PyObject *self, PyObject *args) {
    (void)self;
    const char *text;
    Py_ssize_t text_len;
    PyObject *columns, *prefixes;
    if (!PyArg_ParseTuple(args, "y#O!O!", &text, &text_len, &PyTuple_Type, &columns,
                          &PyTuple_Type, &prefixes)) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(prefixes) != PyTuple_GET_SIZE(columns) ||
        PyTuple_GET_SIZE(columns) == 0) {
        PyErr_SetString(PyExc_ValueError, "one prefix per column, and a column at least");
        return NULL;
    }
    /* The quote stands in for a delimiter: a string's plain bytes stay plain. */
    Parser ps = {.p = text, .end = text + text_len, .delimiter = '"', .jsonl = 1};
    return run(&ps, columns, prefixes, text_len);
}
