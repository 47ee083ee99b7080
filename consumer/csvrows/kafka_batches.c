/* Kafka record batches (message format v2) read in C: a lane takes the raw bytes a fetch
 * returned and finds each record's offset and value itself, so the service never builds
 * a Python object per record (aiokafka's consumer did: most of the service's CPU time).
 *
 * batch_records(data, pos, start, end, key, timestamps) -> (list[tuple], int)
 *
 * Reads the batches of `data` from byte `pos` on, each CRC-checked (CRC-32C, as Kafka
 * does), and returns (offset, value), or with `timestamps` (offset, timestamp, value), of
 * each record with start <= offset < end whose key
 * is `key` (any key when None), in offset order, and where it stopped: the end of `data`,
 * or a batch it leaves to aiokafka's reader (compressed, or an older message format),
 * which the caller reads and then calls again past it. Control batches (transaction
 * markers) hold no data and are skipped, as the consumer skips them.
 *
 * ValueError(message, base offset), the message naming the offset, for a batch that is cut short, whose CRC
 * does not match, or whose records do not fit it.
 *
 * crc32c(data, hardware) -> int: the checksum alone, so tests can hold both ways of
 * computing it (the SSE4.2 instruction and the table) to a reference.
 */

#include <stdint.h>
#include <string.h>

#include "csvrows.h"

#define LOG_OVERHEAD 12  /* base offset (8) and batch length (4), ahead of what it counts */
#define HEADER 61        /* a v2 batch's header, up to its first record */
#define CRC_FROM 21      /* the CRC covers the batch from its attributes to its end */
#define COMPRESSION 0x07 /* attribute bits */
#define LOG_APPEND_TIME 0x08
#define CONTROL 0x20

static uint32_t crc_table[8][256];

void kafka_batches_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t crc = n;
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
        crc_table[0][n] = crc;
    }
    for (uint32_t n = 0; n < 256; n++) {
        for (int t = 1; t < 8; t++)
            crc_table[t][n] = (crc_table[t - 1][n] >> 8) ^ crc_table[0][crc_table[t - 1][n] & 0xff];
    }
}

static uint32_t crc32c_table(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n >= 8) { /* slicing by 8 */
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
              crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--) crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_HARDWARE_CRC 1
__attribute__((target("sse4.2"))) static uint32_t crc32c_hardware(uint32_t crc, const uint8_t *p,
                                                                   size_t n) {
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8); /* unaligned */
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
static int has_hardware_crc(void) { return __builtin_cpu_supports("sse4.2"); }
#else
#define HAVE_HARDWARE_CRC 0
static uint32_t crc32c_hardware(uint32_t crc, const uint8_t *p, size_t n) {
    return crc32c_table(crc, p, n);
}
static int has_hardware_crc(void) { return 0; }
#endif

static uint32_t crc32c(const uint8_t *p, size_t n, int hardware) {
    return hardware ? crc32c_hardware(0, p, n) : crc32c_table(0, p, n);
}

static int64_t be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return (int64_t)v;
}

static int32_t be32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

/* Corrupt input must not overflow a signed sum (undefined behaviour): it wraps. */
static int64_t wrapping_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }

/* A zigzag varint of at most `max_bytes` bytes; -1 when it runs past `end` or is too long. */
static int read_varint(const uint8_t **p, const uint8_t *end, int max_bytes, int64_t *out) {
    uint64_t raw = 0;
    for (int i = 0; i < max_bytes && *p < end; i++) {
        uint8_t b = *(*p)++;
        raw |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)(raw >> 1) ^ -(int64_t)(raw & 1);
            return 0;
        }
    }
    return -1;
}

/* ValueError(message, base offset). */
static PyObject *batch_error(int64_t base, const char *what) {
    PyObject *text = PyUnicode_FromFormat("record batch at offset %lld: %s", (long long)base, what);
    if (text != NULL) {
        PyObject *args = Py_BuildValue("(NL)", text, (long long)base);
        if (args != NULL) {
            PyErr_SetObject(PyExc_ValueError, args);
            Py_DECREF(args);
        }
    }
    return NULL;
}

/* Appends the batch's wanted records to `out`; 0, or -1 with an exception set. */
static int read_records(const uint8_t *batch, const uint8_t *batch_end, int64_t base,
                        long long start, long long end, const char *key, Py_ssize_t key_len,
                        int timestamps, PyObject *out) {
    int32_t count = be32(batch + 57);
    int attributes = batch[21] << 8 | batch[22];
    int64_t base_timestamp = be64(batch + 27), max_timestamp = be64(batch + 35);
    const uint8_t *p = batch + HEADER;
    for (int32_t i = 0; i < count; i++) {
        int64_t length, timestamp_delta, offset_delta, field_len;
        /* A record holds its attributes byte at least (stepped over below). */
        if (read_varint(&p, batch_end, 5, &length) < 0 || length < 1 ||
            length > batch_end - p) {
            batch_error(base, "a record runs past the batch's end");
            return -1;
        }
        const uint8_t *record_end = p + length;
        p++; /* attributes: unused */
        if (p > record_end || read_varint(&p, record_end, 10, &timestamp_delta) < 0 ||
            read_varint(&p, record_end, 5, &offset_delta) < 0 ||
            read_varint(&p, record_end, 5, &field_len) < 0 || field_len < -1 ||
            field_len > record_end - p) {
            batch_error(base, "a record's fields run past its length");
            return -1;
        }
        int64_t offset = wrapping_add(base, offset_delta);
        int wanted = offset >= start && offset < end;
        if (key != NULL)
            wanted = wanted && field_len == key_len && memcmp(p, key, (size_t)key_len) == 0;
        if (field_len > 0) p += field_len;
        if (read_varint(&p, record_end, 5, &field_len) < 0 || field_len < -1 ||
            field_len > record_end - p) {
            batch_error(base, "a record's value runs past its length");
            return -1;
        }
        if (wanted) {
            PyObject *value = field_len < 0 ? Py_NewRef(Py_None)
                                            : PyBytes_FromStringAndSize((const char *)p,
                                                                        (Py_ssize_t)field_len);
            /* Under LogAppendTime the broker's time, kept once for the batch, is every
             * record's (as aiokafka reads it). */
            long long timestamp = (attributes & LOG_APPEND_TIME)
                                      ? (long long)max_timestamp
                                      : (long long)wrapping_add(base_timestamp, timestamp_delta);
            PyObject *item = value == NULL ? NULL
                             : timestamps  ? Py_BuildValue("(LLN)", (long long)offset, timestamp,
                                                           value)
                                           : Py_BuildValue("(LN)", (long long)offset, value);
            if (item == NULL || PyList_Append(out, item) < 0) {
                Py_XDECREF(item);
                return -1;
            }
            Py_DECREF(item);
        }
        p = record_end; /* headers are not read */
    }
    return 0;
}

PyObject *kafka_batch_records(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    Py_ssize_t pos;
    long long start, end;
    PyObject *key_obj;
    int timestamps;
    if (!PyArg_ParseTuple(args, "y*nLLOp:batch_records", &data, &pos, &start, &end, &key_obj,
                          &timestamps))
        return NULL;
    const char *key = NULL;
    Py_ssize_t key_len = 0;
    PyObject *records = NULL;
    if (key_obj != Py_None) {
        if (!PyBytes_Check(key_obj)) {
            PyErr_SetString(PyExc_TypeError, "key must be bytes or None");
            goto done;
        }
        key = PyBytes_AS_STRING(key_obj);
        key_len = PyBytes_GET_SIZE(key_obj);
    }
    if (pos < 0 || pos > data.len) {
        PyErr_SetString(PyExc_ValueError, "pos is outside the data");
        goto done;
    }
    records = PyList_New(0);
    if (records == NULL) goto done;
    const uint8_t *bytes = data.buf;
    int hardware = has_hardware_crc();
    while (pos < data.len) {
        const uint8_t *batch = bytes + pos;
        Py_ssize_t left = data.len - pos;
        int64_t base = left >= 8 ? be64(batch) : -1;
        if (left < LOG_OVERHEAD + 5) {
            batch_error(base, "the batch is cut short");
            goto fail;
        }
        int32_t length = be32(batch + 8);
        if (length < 0 || length > left - LOG_OVERHEAD) {
            batch_error(base, "the batch is cut short");
            goto fail;
        }
        if (batch[16] != 2) break; /* an older message format: aiokafka reads it */
        if (length < HEADER - LOG_OVERHEAD) {
            batch_error(base, "the batch is shorter than its header");
            goto fail;
        }
        const uint8_t *batch_end = batch + LOG_OVERHEAD + length;
        int attributes = batch[21] << 8 | batch[22];
        if (attributes & COMPRESSION) break; /* aiokafka decompresses it */
        uint32_t expected = (uint32_t)be32(batch + 17), actual;
        size_t covered = (size_t)(batch_end - batch - CRC_FROM);
        /* The reply thread may send meanwhile. */
        Py_BEGIN_ALLOW_THREADS
        actual = crc32c(batch + CRC_FROM, covered, hardware);
        Py_END_ALLOW_THREADS
        if (actual != expected) {
            batch_error(base, "its CRC does not match its contents (corrupt)");
            goto fail;
        }
        if (!(attributes & CONTROL) &&
            read_records(batch, batch_end, base, start, end, key, key_len, timestamps, records) < 0)
            goto fail;
        pos += LOG_OVERHEAD + length;
    }
    PyObject *result = Py_BuildValue("(Nn)", records, pos);
    PyBuffer_Release(&data);
    return result;
fail:
    Py_CLEAR(records);
done:
    PyBuffer_Release(&data);
    return NULL;
}

PyObject *kafka_crc32c(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    int hardware;
    if (!PyArg_ParseTuple(args, "y*p:crc32c", &data, &hardware)) return NULL;
    uint32_t crc = crc32c(data.buf, (size_t)data.len, hardware && has_hardware_crc());
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLong(crc);
}
