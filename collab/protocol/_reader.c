/* The common Yjs updates read in C: what every edit pays for.
 *
 * `read_small(update)` returns the `UpdateShape` of an update of at most one item (a string,
 * or lib0 values) with any delete set, or of a delete set alone:
 * what typing, deleting and setting a map key make, most updates a server sees. It returns
 * None for every other update AND for every update that breaks a rule: the pure-Python reader
 * (collab/protocol/updates/), which is the reference, then reads it and says which rule. So
 * this file never refuses anything and never explains; it only takes the common valid case off
 * the Python path, with the same rules, and the tests hold it to the Python reader's results
 * (tests/unit/protocol/test_native_reader.py).
 *
 * Every read is bounds-checked against the buffer; counts are checked against the bytes left
 * before anything is looped over; nothing is allocated from a count.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_CLOCK 0xFFFFFFFFull        /* yrs reads clocks as u32 */
#define MAX_SAFE 0x1FFFFFFFFFFFFFull   /* 2**53 - 1: client ids and integers, as JavaScript */
#define MAX_ANY_DEPTH 64
#define MAX_DELETE_SET_CLIENTS 8       /* more: Python reads it (duplicates checked by a set) */

#define HAS_ORIGIN 0x80
#define HAS_RIGHT_ORIGIN 0x40
#define HAS_PARENT_SUB 0x20
#define CONTENT_STRING 4
#define CONTENT_ANY 8

static PyTypeObject *update_shape_type = NULL;
static PyTypeObject *client_range_type = NULL;

typedef struct {
    const uint8_t *buf;
    Py_ssize_t len;
    Py_ssize_t pos;
} Reader;

/* Each reader returns 0, or -1 when the update is not one read here (or breaks a rule). */

static int read_uint(Reader *r, uint64_t *out) {
    uint64_t value = 0;
    for (int index = 0; index < 8; index++) {
        if (r->pos >= r->len) {
            return -1;
        }
        uint8_t byte = r->buf[r->pos++];
        value |= (uint64_t)(byte & 0x7F) << (7 * index);
        if (byte < 0x80) {
            if (value > MAX_SAFE) {
                return -1;
            }
            *out = value;
            return 0;
        }
    }
    return -1; /* longer than lib0 writes */
}

/* A count of things that take at least `min_each` bytes each, checked against what is left. */
static int read_count(Reader *r, uint64_t *out, uint64_t min_each) {
    if (read_uint(r, out) < 0) {
        return -1;
    }
    return *out * min_each > (uint64_t)(r->len - r->pos) ? -1 : 0;
}

static int skip_raw(Reader *r, uint64_t length) {
    if (length > (uint64_t)(r->len - r->pos)) {
        return -1;
    }
    r->pos += (Py_ssize_t)length;
    return 0;
}

/* The length in UTF-16 code units (as yjs counts clocks) of strict UTF-8, as Python's codec
 * accepts it (no overlong forms, no surrogates, nothing above U+10FFFF); -1 if invalid. */
static int64_t utf16_length(const uint8_t *s, Py_ssize_t n) {
    int64_t units = 0;
    Py_ssize_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i += 1;
            units += 1;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (n - i < 2 || (s[i + 1] & 0xC0) != 0x80) {
                return -1;
            }
            i += 2;
            units += 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (n - i < 3 || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) {
                return -1;
            }
            if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] >= 0xA0)) {
                return -1; /* overlong, or a surrogate */
            }
            i += 3;
            units += 1;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (n - i < 4 || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80) {
                return -1;
            }
            if ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] >= 0x90)) {
                return -1; /* overlong, or above U+10FFFF */
            }
            i += 4;
            units += 2;
        } else {
            return -1;
        }
    }
    return units;
}

/* A lib0 var_string of valid UTF-8; its bytes in *start and *length. */
static int read_string(Reader *r, const uint8_t **start, uint64_t *length) {
    if (read_uint(r, length) < 0 || *length > (uint64_t)(r->len - r->pos)) {
        return -1;
    }
    *start = r->buf + r->pos;
    if (utf16_length(*start, (Py_ssize_t)*length) < 0) {
        return -1;
    }
    r->pos += (Py_ssize_t)*length;
    return 0;
}

/* lib0's signed var_int: 6 value bits and a sign in the first byte, then 7 per byte. */
static int skip_var_int(Reader *r) {
    if (r->pos >= r->len) {
        return -1;
    }
    uint8_t byte = r->buf[r->pos++];
    uint64_t value = byte & 0x3F;
    int shift = 6;
    while (byte & 0x80) {
        if (shift > 53 || r->pos >= r->len) {
            return -1;
        }
        byte = r->buf[r->pos++];
        value |= (uint64_t)(byte & 0x7F) << shift;
        shift += 7;
    }
    return value > MAX_SAFE ? -1 : 0;
}

static int skip_any(Reader *r, int depth) {
    const uint8_t *start;
    uint64_t length, count;
    if (depth > MAX_ANY_DEPTH || r->pos >= r->len) {
        return -1;
    }
    uint8_t tag = r->buf[r->pos++];
    switch (tag) {
    case 119: /* string */
        return read_string(r, &start, &length);
    case 127: /* undefined */
    case 126: /* null */
    case 121: /* false */
    case 120: /* true */
        return 0;
    case 125: /* var_int */
        return skip_var_int(r);
    case 123: /* float64 */
    case 122: /* bigint64 */
        return skip_raw(r, 8);
    case 124: /* float32 */
        return skip_raw(r, 4);
    case 118: /* object */
        if (read_count(r, &count, 2) < 0) {
            return -1;
        }
        for (uint64_t entry = 0; entry < count; entry++) {
            if (read_string(r, &start, &length) < 0) {
                return -1;
            }
            if (length == 9 && memcmp(start, "__proto__", 9) == 0) {
                return -1;
            }
            if (skip_any(r, depth + 1) < 0) {
                return -1;
            }
        }
        return 0;
    case 117: /* array */
        if (read_count(r, &count, 1) < 0) {
            return -1;
        }
        for (uint64_t entry = 0; entry < count; entry++) {
            if (skip_any(r, depth + 1) < 0) {
                return -1;
            }
        }
        return 0;
    case 116: /* Uint8Array */
        if (read_uint(r, &length) < 0) {
            return -1;
        }
        return skip_raw(r, length);
    default:
        return -1;
    }
}

/* An instance of a NamedTuple class of tuples, filled with `count` new references (stolen,
 * released on failure). */
static PyObject *named_tuple(PyTypeObject *type, Py_ssize_t count, PyObject **items) {
    PyObject *tuple = NULL;
    for (Py_ssize_t index = 0; index < count; index++) {
        if (items[index] == NULL) {
            goto fail;
        }
    }
    tuple = type->tp_alloc(type, count);
    if (tuple == NULL) {
        goto fail;
    }
    for (Py_ssize_t index = 0; index < count; index++) {
        PyTuple_SET_ITEM(tuple, index, items[index]);
    }
    return tuple;
fail:
    for (Py_ssize_t index = 0; index < count; index++) {
        Py_XDECREF(items[index]);
    }
    return NULL;
}

static PyObject *id_pair(uint64_t client, uint64_t clock) {
    return Py_BuildValue("(KK)", (unsigned long long)client, (unsigned long long)clock);
}

typedef struct {
    uint64_t client;
    uint64_t clock;
} Id;

/* An id an item of `client` at `clock` refers to (origin, right origin or parent): within the
 * clock limit, and never the item's own client at or after its clock. */
static int read_ref(Reader *r, uint64_t client, uint64_t clock, Id *ref) {
    if (read_uint(r, &ref->client) < 0 || read_uint(r, &ref->clock) < 0) {
        return -1;
    }
    return ref->clock > MAX_CLOCK || (ref->client == client && ref->clock >= clock) ? -1 : 0;
}

static PyObject *read_small(PyObject *module, PyObject *arg) {
    (void)module;
    if (update_shape_type == NULL || client_range_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "collab.protocol._reader is not configured");
        return NULL;
    }
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "read_small takes bytes");
        return NULL;
    }
    Reader r = {(const uint8_t *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg), 0};
    uint64_t n_clients, n_structs, client = 0, clock = 0, length = 0;
    int kind = 0;
    Id refs[2];
    int n_refs = 0, parent_ref = 0; /* refs: the origins, in order, or the parent */

    if (read_count(&r, &n_clients, 3) < 0 || n_clients > 1) {
        Py_RETURN_NONE;
    }
    if (n_clients == 1) {
        if (read_uint(&r, &n_structs) < 0 || n_structs != 1 || read_uint(&r, &client) < 0 ||
            read_uint(&r, &clock) < 0 || r.pos >= r.len) {
            Py_RETURN_NONE;
        }
        uint8_t info = r.buf[r.pos++];
        kind = info & 0x1F;
        if (kind != CONTENT_STRING && kind != CONTENT_ANY) {
            Py_RETURN_NONE;
        }
        for (int flag = HAS_ORIGIN; flag >= HAS_RIGHT_ORIGIN; flag >>= 1) {
            if (info & flag && read_ref(&r, client, clock, &refs[n_refs++]) < 0) {
                Py_RETURN_NONE;
            }
        }
        if (n_refs == 0) {
            /* Placed by its parent: a root type by name, or a type item by id; in a map,
             * under a key. */
            uint64_t parent_info, key_length;
            const uint8_t *key;
            if (read_uint(&r, &parent_info) < 0) {
                Py_RETURN_NONE;
            }
            if (parent_info == 1) {
                if (read_string(&r, &key, &key_length) < 0) {
                    Py_RETURN_NONE;
                }
            } else if (parent_info != 0 || read_ref(&r, client, clock, &refs[0]) < 0) {
                Py_RETURN_NONE;
            } else {
                parent_ref = 1;
            }
            if (info & HAS_PARENT_SUB) {
                if (read_string(&r, &key, &key_length) < 0 ||
                    (key_length == 9 && memcmp(key, "__proto__", 9) == 0) ||
                    kind == CONTENT_STRING) {
                    Py_RETURN_NONE;
                }
            }
        }
        if (kind == CONTENT_STRING) {
            uint64_t bytes;
            if (read_uint(&r, &bytes) < 0 || bytes > (uint64_t)(r.len - r.pos)) {
                Py_RETURN_NONE;
            }
            int64_t units = utf16_length(r.buf + r.pos, (Py_ssize_t)bytes);
            if (units < 0) {
                Py_RETURN_NONE;
            }
            r.pos += (Py_ssize_t)bytes;
            length = (uint64_t)units;
        } else {
            if (read_count(&r, &length, 1) < 0) {
                Py_RETURN_NONE;
            }
            for (uint64_t value = 0; value < length; value++) {
                if (skip_any(&r, 0) < 0) {
                    Py_RETURN_NONE;
                }
            }
        }
        if (length == 0 || clock + length > MAX_CLOCK) {
            Py_RETURN_NONE;
        }
    }

    Py_ssize_t delete_set_offset = r.pos;
    uint64_t n_deleted_clients;
    Id deletes[MAX_DELETE_SET_CLIENTS]; /* client, end of its last deleted range */
    if (read_count(&r, &n_deleted_clients, 2) < 0 ||
        n_deleted_clients > MAX_DELETE_SET_CLIENTS) {
        Py_RETURN_NONE;
    }
    for (uint64_t index = 0; index < n_deleted_clients; index++) {
        uint64_t deleted_client, n_ranges, last_end = 0;
        if (read_uint(&r, &deleted_client) < 0) {
            Py_RETURN_NONE;
        }
        for (uint64_t earlier = 0; earlier < index; earlier++) {
            if (deletes[earlier].client == deleted_client) {
                Py_RETURN_NONE;
            }
        }
        if (read_count(&r, &n_ranges, 2) < 0 || n_ranges == 0) {
            Py_RETURN_NONE;
        }
        for (uint64_t range = 0; range < n_ranges; range++) {
            uint64_t deleted_at, deleted;
            if (read_uint(&r, &deleted_at) < 0 || read_uint(&r, &deleted) < 0 || deleted == 0) {
                Py_RETURN_NONE;
            }
            if (deleted_at + deleted > last_end) {
                last_end = deleted_at + deleted;
            }
        }
        if (last_end > MAX_CLOCK) {
            Py_RETURN_NONE;
        }
        deletes[index].client = deleted_client;
        deletes[index].clock = last_end;
    }
    if (r.pos != r.len) {
        Py_RETURN_NONE;
    }

    /* The shape, as updates/reader.py builds it. */
    PyObject *clients = PyDict_New();
    PyObject *refs_of = PyDict_New();
    PyObject *deletes_of = PyDict_New();
    PyObject *values = NULL;
    PyObject *neighbours = NULL;
    if (clients == NULL || refs_of == NULL || deletes_of == NULL) {
        goto fail;
    }
    for (uint64_t index = 0; index < n_deleted_clients; index++) {
        PyObject *key = PyLong_FromUnsignedLongLong(deletes[index].client);
        PyObject *end = PyLong_FromUnsignedLongLong(deletes[index].clock);
        int failed = key == NULL || end == NULL || PyDict_SetItem(deletes_of, key, end) < 0;
        Py_XDECREF(key);
        Py_XDECREF(end);
        if (failed) {
            goto fail;
        }
    }
    if (n_clients == 1) {
        PyObject *range_items[3] = {
            PyLong_FromUnsignedLongLong(clock),
            PyLong_FromUnsignedLongLong(clock + length),
            PyTuple_New(0),
        };
        PyObject *range = named_tuple(client_range_type, 3, range_items);
        PyObject *key = PyLong_FromUnsignedLongLong(client);
        int failed = range == NULL || key == NULL || PyDict_SetItem(clients, key, range) < 0;
        Py_XDECREF(range);
        Py_XDECREF(key);
        if (failed) {
            goto fail;
        }
        for (int index = 0; index < n_refs + parent_ref; index++) {
            /* the highest clock referred to per client */
            if (index == 1 && refs[1].client == refs[0].client && refs[1].clock <= refs[0].clock) {
                continue;
            }
            PyObject *ref_client = PyLong_FromUnsignedLongLong(refs[index].client);
            PyObject *ref_clock = PyLong_FromUnsignedLongLong(refs[index].clock);
            failed = ref_client == NULL || ref_clock == NULL ||
                     PyDict_SetItem(refs_of, ref_client, ref_clock) < 0;
            Py_XDECREF(ref_client);
            Py_XDECREF(ref_clock);
            if (failed) {
                goto fail;
            }
        }
        if (kind == CONTENT_ANY) {
            values = Py_BuildValue(
                "((KKK))", (unsigned long long)client, (unsigned long long)clock,
                (unsigned long long)(clock + length));
            neighbours = PyTuple_New(0);
        } else {
            values = PyTuple_New(0);
            neighbours = PyTuple_New(n_refs);
            for (int index = 0; neighbours != NULL && index < n_refs; index++) {
                PyObject *pair = id_pair(refs[index].client, refs[index].clock);
                if (pair == NULL) {
                    Py_CLEAR(neighbours);
                    break;
                }
                PyTuple_SET_ITEM(neighbours, index, pair);
            }
        }
    } else {
        values = PyTuple_New(0);
        neighbours = PyTuple_New(0);
    }
    if (values == NULL || neighbours == NULL) {
        goto fail;
    }
    PyObject *shape_items[7] = {
        clients,
        refs_of,
        deletes_of,
        PyLong_FromSsize_t(delete_set_offset),
        PyLong_FromUnsignedLongLong(n_clients),
        values,
        neighbours,
    };
    return named_tuple(update_shape_type, 7, shape_items);
fail:
    Py_XDECREF(clients);
    Py_XDECREF(refs_of);
    Py_XDECREF(deletes_of);
    Py_XDECREF(values);
    Py_XDECREF(neighbours);
    return NULL;
}

/* A non-negative int of a shape or a state vector as a C integer; -1 if it is not one. */
static long long clock_of(PyObject *number) {
    if (number == NULL || !PyLong_CheckExact(number)) {
        return -1;
    }
    long long value = PyLong_AsLongLong(number);
    if (value == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return value;
}

/* The clock a document at `clocks` has of `client`: 0 if absent, -1 if not readable. */
static long long have_of(PyObject *clocks, PyObject *client) {
    PyObject *have = PyDict_GetItemWithError(clocks, client);
    if (have == NULL) {
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return -1;
        }
        return 0;
    }
    return clock_of(have);
}

/* Whether a reference to (or a deletion up to) `clock` of `client` is covered by the document
 * at `clocks` with the update's structs in: 1 yes, 0 no (or not readable). `inclusive`: the
 * clock itself must exist (a reference), else only what comes before it (a deletion's end). */
static int covered(PyObject *clients, PyObject *clocks, PyObject *client, PyObject *clock_obj,
                   int inclusive) {
    long long clock = clock_of(clock_obj);
    long long have = have_of(clocks, client);
    if (clock < 0 || have < 0) {
        return 0;
    }
    if (inclusive ? clock < have : clock <= have) {
        return 1;
    }
    PyObject *structs = PyDict_GetItemWithError(clients, client);
    if (structs == NULL || !PyTuple_Check(structs) || PyTuple_GET_SIZE(structs) != 3) {
        PyErr_Clear();
        return 0;
    }
    long long end = clock_of(PyTuple_GET_ITEM(structs, 1));
    return end >= 0 && (inclusive ? clock < end : clock <= end);
}

/* updates.checks._check for what every edit is: True or False (whether the update carries new
 * structs) when a document at `clocks` can take it, None when Python is to say why not (or
 * to read shapes this does not). */
static PyObject *check(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *shape, *clocks;
    int refuse_overlap;
    if (!PyArg_ParseTuple(args, "OO!p", &shape, &PyDict_Type, &clocks, &refuse_overlap)) {
        return NULL;
    }
    if (!PyTuple_Check(shape) || PyTuple_GET_SIZE(shape) != 7) {
        Py_RETURN_NONE;
    }
    PyObject *clients = PyTuple_GET_ITEM(shape, 0);
    PyObject *refs = PyTuple_GET_ITEM(shape, 1);
    PyObject *deletes = PyTuple_GET_ITEM(shape, 2);
    if (!PyDict_CheckExact(clients) || !PyDict_CheckExact(refs) || !PyDict_CheckExact(deletes)) {
        Py_RETURN_NONE;
    }
    int new = 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(clients, &pos, &key, &value)) {
        if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 3) {
            Py_RETURN_NONE;
        }
        long long have = have_of(clocks, key);
        long long start = clock_of(PyTuple_GET_ITEM(value, 0));
        long long end = clock_of(PyTuple_GET_ITEM(value, 1));
        PyObject *skips = PyTuple_GET_ITEM(value, 2);
        if (have < 0 || start < 0 || end < 0 || start > have) {
            Py_RETURN_NONE;
        }
        if (end > have) {
            if (refuse_overlap && start < have) {
                Py_RETURN_NONE;
            }
            new = 1;
        }
        if (!PyTuple_Check(skips) || PyTuple_GET_SIZE(skips) != 0) {
            Py_RETURN_NONE; /* skips: Python checks them */
        }
    }
    pos = 0;
    while (PyDict_Next(refs, &pos, &key, &value)) {
        if (!covered(clients, clocks, key, value, 1)) {
            Py_RETURN_NONE;
        }
    }
    pos = 0;
    while (PyDict_Next(deletes, &pos, &key, &value)) {
        if (!covered(clients, clocks, key, value, 0)) {
            Py_RETURN_NONE;
        }
    }
    return PyBool_FromLong(new);
}

/* The value ranges of one client (a list of (start, end) tuples, sorted) take [start, end):
 * 1 when it extends the last range or follows it, 0 (nothing changed) otherwise. */
static int extend_ranges(PyObject *ranges, PyObject *start_obj, PyObject *end_obj) {
    Py_ssize_t count = PyList_GET_SIZE(ranges);
    if (count == 0) {
        PyObject *range = PyTuple_Pack(2, start_obj, end_obj);
        int failed = range == NULL || PyList_Append(ranges, range) < 0;
        Py_XDECREF(range);
        return failed ? -1 : 1;
    }
    PyObject *last = PyList_GET_ITEM(ranges, count - 1);
    if (!PyTuple_CheckExact(last) || PyTuple_GET_SIZE(last) != 2) {
        return 0;
    }
    long long last_end = clock_of(PyTuple_GET_ITEM(last, 1));
    long long start = clock_of(start_obj);
    if (last_end < 0 || start < 0) {
        return 0;
    }
    if (last_end == start) {
        PyObject *range = PyTuple_Pack(2, PyTuple_GET_ITEM(last, 0), end_obj);
        if (range == NULL) {
            return -1;
        }
        PyList_SET_ITEM(ranges, count - 1, range); /* steals range */
        Py_DECREF(last);
        return 1;
    }
    if (last_end < start) {
        PyObject *range = PyTuple_Pack(2, start_obj, end_obj);
        int failed = range == NULL || PyList_Append(ranges, range) < 0;
        Py_XDECREF(range);
        return failed ? -1 : 1;
    }
    return 0;
}

/* updates.checks.advance for what every edit is (one client's structs, at most one value range
 * following the client's earlier ones): True when done, False (nothing changed) when Python
 * is to do it. */
static PyObject *advance(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *shape, *clocks, *values;
    if (!PyArg_ParseTuple(args, "OO!O!", &shape, &PyDict_Type, &clocks, &PyDict_Type, &values)) {
        return NULL;
    }
    if (!PyTuple_Check(shape) || PyTuple_GET_SIZE(shape) != 7) {
        Py_RETURN_FALSE;
    }
    PyObject *clients = PyTuple_GET_ITEM(shape, 0);
    PyObject *value_ranges = PyTuple_GET_ITEM(shape, 5);
    if (!PyDict_CheckExact(clients) || PyDict_GET_SIZE(clients) > 1 ||
        !PyTuple_CheckExact(value_ranges) || PyTuple_GET_SIZE(value_ranges) > 1) {
        Py_RETURN_FALSE;
    }
    PyObject *client = NULL, *range = NULL, *end = NULL;
    Py_ssize_t pos = 0;
    if (PyDict_Next(clients, &pos, &client, &range)) {
        if (!PyTuple_Check(range) || PyTuple_GET_SIZE(range) != 3) {
            Py_RETURN_FALSE;
        }
        end = PyTuple_GET_ITEM(range, 1);
        long long have = have_of(clocks, client);
        long long end_clock = clock_of(end);
        if (have < 0 || end_clock < 0) {
            Py_RETURN_FALSE;
        }
        if (end_clock <= have) {
            end = NULL; /* the clock stays */
        }
    }
    if (PyTuple_GET_SIZE(value_ranges) == 1) {
        PyObject *triple = PyTuple_GET_ITEM(value_ranges, 0);
        if (!PyTuple_CheckExact(triple) || PyTuple_GET_SIZE(triple) != 3) {
            Py_RETURN_FALSE;
        }
        PyObject *value_client = PyTuple_GET_ITEM(triple, 0);
        PyObject *ranges = PyDict_GetItemWithError(values, value_client);
        if (ranges == NULL) {
            if (PyErr_Occurred()) {
                return NULL;
            }
            ranges = PyList_New(0);
            if (ranges == NULL) {
                return NULL;
            }
            int failed = PyDict_SetItem(values, value_client, ranges);
            Py_DECREF(ranges); /* the dict holds it */
            if (failed < 0) {
                return NULL;
            }
        } else if (!PyList_CheckExact(ranges)) {
            Py_RETURN_FALSE;
        }
        int done = extend_ranges(ranges, PyTuple_GET_ITEM(triple, 1), PyTuple_GET_ITEM(triple, 2));
        if (done < 0) {
            return NULL;
        }
        if (done == 0) {
            Py_RETURN_FALSE; /* the clock not advanced either: Python does both */
        }
    }
    if (end != NULL && PyDict_SetItem(clocks, client, end) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static int check_tuple_class(PyObject *type, Py_ssize_t fields) {
    if (!PyType_Check(type) || !PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "configure takes two NamedTuple classes");
        return -1;
    }
    PyObject *names = PyObject_GetAttrString(type, "_fields");
    if (names == NULL) {
        return -1;
    }
    Py_ssize_t count = PyTuple_Check(names) ? PyTuple_GET_SIZE(names) : -1;
    Py_DECREF(names);
    if (count != fields) {
        PyErr_Format(PyExc_TypeError, "expected a NamedTuple of %zd fields", fields);
        return -1;
    }
    return 0;
}

static PyObject *configure(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *shape, *range;
    if (!PyArg_ParseTuple(args, "OO", &shape, &range)) {
        return NULL;
    }
    if (check_tuple_class(shape, 7) < 0 || check_tuple_class(range, 3) < 0) {
        return NULL;
    }
    Py_INCREF(shape);
    Py_INCREF(range);
    Py_XSETREF(update_shape_type, (PyTypeObject *)shape);
    Py_XSETREF(client_range_type, (PyTypeObject *)range);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"read_small", read_small, METH_O,
     "The UpdateShape of an update of one string or value item, or of deletions alone; "
     "None for any other update and for one that breaks a rule."},
    {"check", check, METH_VARARGS,
     "True or False (new structs or not) when a document at the clocks can take an update of "
     "the shape; None when the Python check is to say why not."},
    {"advance", advance, METH_VARARGS,
     "Advance the clocks and the value index by an applied update of the shape: True, or "
     "False (nothing changed) when Python is to do it."},
    {"configure", configure, METH_VARARGS,
     "Set the UpdateShape and ClientRange classes read_small builds."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "collab.protocol._reader",
    "The common Yjs updates read in C (see collab/protocol/updates/).", -1, methods,
};

PyMODINIT_FUNC PyInit__reader(void) { return PyModule_Create(&module_def); }
