/* sseload._sse: the compiled twin of sseload.protocol.sse.PyEventLog, the harness's per-event hot path.
 *
 * Why: at 2,000 streams per core the event loop spent most of its time turning reads into
 * three integers per event in Python (split lines, build an event tuple, decode its data,
 * find the send time in it, append to three arrays): 2.5-3 µs per event. Here one pass over
 * the read's bytes does all of it with no Python object per event. Only the events the
 * caller must act on (a typed event such as `done` or `error`, or the data sentinel such as
 * `[DONE]`) come back as sseload.protocol.sse_types.SSEEvent tuples. Given the body's framing (chunked, or a
 * Content-Length), a read goes from the socket to events in this one call: the framing is taken
 * off here too (sseload.protocol.sse.BodyFraming), not by httptools and a Python callback per chunk.
 *
 * sseload.protocol.sse stays the specification: SSEParser is the WHATWG parser, and sseload.protocol.sse.EventLog
 * (PyEventLog) defines this type's behaviour on top of it, byte for byte: the same events, sizes,
 * send times, malformed counts, retry, last event id and errors at every split of the input.
 * tests/test_event_log.py checks the two against each other on generated streams; change both
 * together. Where this module is not built, sseload.protocol.sse.EventLog is the Python one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "_sse_api.h"

static PyObject *SSEEvent;          /* sseload.protocol.sse_types.SSEEvent */
static PyObject *SSEProtocolError;  /* sseload.protocol.sse_types.SSEProtocolError */

#define MAX_RETRY_DIGITS 18  /* longer is not a reconnection time: malformed (as in sseload.protocol.sse) */

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

static int buf_reserve(Buf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = PyMem_Realloc(b->p, cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const char *s, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static int buf_set(Buf *b, const char *s, Py_ssize_t n) {
    b->len = 0;
    return buf_put(b, s, n);
}

typedef struct {
    int64_t *p;
    Py_ssize_t len, cap;
} Ints;

static int ints_push(Ints *a, int64_t v) {
    if (a->len == a->cap) {
        Py_ssize_t cap = a->cap ? a->cap * 2 : 64;
        int64_t *p = PyMem_Realloc(a->p, cap * sizeof(int64_t));
        if (!p) {
            PyErr_NoMemory();
            return -1;
        }
        a->p = p;
        a->cap = cap;
    }
    a->p[a->len++] = v;
    return 0;
}

typedef struct {
    PyObject_HEAD
    Py_ssize_t max_event_bytes;
    Buf pending;      /* an unterminated line (or a partial BOM) from earlier reads */
    Buf scratch;      /* a line assembled from pending + this read */
    int cr_pending;   /* the last byte seen was CR: a leading LF is the same line end */
    int bom_pending;  /* still at the stream's start: may see (part of) a BOM */
    Buf data;         /* the event's data lines, each followed by "\n" */
    Py_ssize_t data_lines;
    Buf event_type;
    Buf last_id;
    Buf first_id;     /* the last event id in effect at the stream's first event (a feed's resume point) */
    PyObject *retry;  /* int or None */
    Py_ssize_t malformed;
    Buf truth_key;    /* empty: no send times */
    Buf sentinel;
    int has_sentinel;
    Ints t_ns, size, server_ns;
    int openai;       /* OpenAI-style chunks: per event, whether it carries output and its usage */
    Ints llm;         /* openai: per event, output (1 or 0) + 2 * (usage.completion_tokens + 1) */
    int64_t prompt_tokens;  /* openai: the last usage.prompt_tokens seen, -1 before one */
    int output_kinds; /* openai: which fields count as output (OUTPUT_* bits) */
    int keep_output;  /* openai: keep the data of each chunk carrying output (a tokenizer, a conversation) */
    Buf outputs;      /* keep_output: those chunks' data, one after another */
    Ints output_ends; /* keep_output: where each one ends in outputs */
    /* the body's framing (sseload.protocol.sse.BodyFraming): none, Content-Length, or chunked */
    int framing;      /* FRAMING_* */
    int fstate;       /* chunked: F_* */
    int64_t left;     /* bytes left of the body (length) or of the chunk (chunked) */
    Buf fline;        /* a framing line begun in earlier reads */
    int complete;
    Ints segs;        /* this read's content: (offset, length) pairs into the read */
    long long bytes_in;   /* every byte fed, framing and all */
    int64_t last_t_ns;    /* the time of the last read fed, -1 before one */
} EventLog;

enum { FRAMING_NONE, FRAMING_LENGTH, FRAMING_CHUNKED };
enum { F_SIZE, F_DATA, F_DATA_END, F_TRAILER, F_COMPLETE };
#define MAX_FRAMING_LINE 16384  /* as sseload.protocol.sse.MAX_FRAMING_LINE */

/* Python's strict UTF-8 decoder accepts exactly this (no overlongs, surrogates or > U+10FFFF). */
static int utf8_valid(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) { need = 2; lo = 0xA0; }
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
        else if (c == 0xED) { need = 2; hi = 0x9F; }
        else if (c == 0xF0) { need = 3; lo = 0x90; }
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) { need = 3; hi = 0x8F; }
        else return 0;
        if (i + need >= n)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (int k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += need + 1;
    }
    return 1;
}

/* The number after the truth key: spaces or tabs, then ASCII digits that fit an int64; else 0. */
static int64_t truth_of(const EventLog *self, const char *raw, Py_ssize_t n) {
    Py_ssize_t klen = self->truth_key.len;
    if (klen == 0 || n < klen)
        return 0;
    const char *k = memmem(raw, n, self->truth_key.p, klen);
    if (!k)
        return 0;
    const char *p = k + klen, *end = raw + n;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    const char *digits = p;
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (p - digits >= 19)
            return 0;
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    if (p == digits || v > (uint64_t)INT64_MAX)
        return 0;
    return (int64_t)v;
}

/* The limit counts an event's data: its lines' values, not the "data: " field names nor the line
 * ends (so a 1 MiB data line fits a 1 MiB limit), as sseload.protocol.sse.SSEParser._check_size. */
static Py_ssize_t event_size(const EventLog *self) {
    Py_ssize_t size = self->data.len - self->data_lines + self->pending.len;
    const char *p = self->pending.p;
    if (self->pending.len >= 5 && memcmp(p, "data:", 5) == 0)
        size -= (self->pending.len >= 6 && p[5] == ' ') ? 6 : 5;
    return size;
}

/* 0 when the event is within the limit, else the protocol error (-1). Callers test the cheap
 * over-estimate data.len + pending.len first. */
static int check_size(EventLog *self) {
    Py_ssize_t size = event_size(self);
    if (size <= self->max_event_bytes)
        return 0;
    PyErr_Format(SSEProtocolError,
                 "an event grew past max_event_bytes=%zd (%zd bytes of data without an event end); raise "
                 "the limit in the scenario ([stream] max_event_bytes) if the service really sends "
                 "events this large", self->max_event_bytes, size);
    return -1;
}

/* OpenAI-style chunks without a JSON parser (as sseload.protocol.sse.openai_facts, the definition): a key
 * counts where it stands as a key ("key" then optional blanks and a colon), not escaped inside a
 * string (no backslash before its opening quote). */
static Py_ssize_t find_from(const char *s, Py_ssize_t n, Py_ssize_t from, const char *needle, Py_ssize_t m) {
    for (Py_ssize_t i = from; i + m <= n; i++) {
        const char *hit = memchr(s + i, needle[0], n - m - i + 1);
        if (!hit)
            return -1;
        i = hit - s;
        if (memcmp(hit, needle, m) == 0)
            return i;
    }
    return -1;
}

static Py_ssize_t skip_blanks(const char *s, Py_ssize_t n, Py_ssize_t j) {
    while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r'))
        j++;
    return j;
}

/* The index of the value after each occurrence of `key` (quoted) as a key, from `*from`; -1 when none. */
static Py_ssize_t value_of(const char *s, Py_ssize_t n, const char *key, Py_ssize_t m, Py_ssize_t *from) {
    Py_ssize_t k;
    while ((k = find_from(s, n, *from, key, m)) >= 0) {
        *from = k + m;
        if (k > 0 && s[k - 1] == '\\')
            continue;
        Py_ssize_t j = skip_blanks(s, n, k + m);
        if (j < n && s[j] == ':')
            return skip_blanks(s, n, j + 1);
    }
    return -1;
}

static int has_text(const char *s, Py_ssize_t n, const char *key, Py_ssize_t m) {
    Py_ssize_t from = 0, j;
    while ((j = value_of(s, n, key, m, &from)) >= 0)
        if (j + 1 < n && s[j] == '"' && s[j + 1] != '"')
            return 1;
    return 0;
}

static int64_t number_of(const char *s, Py_ssize_t n, const char *key, Py_ssize_t m) {
    Py_ssize_t from = 0, j = value_of(s, n, key, m, &from);
    if (j < 0 || j >= n || s[j] < '0' || s[j] > '9')
        return -1;
    int64_t v = 0;
    for (int digits = 0; j < n && s[j] >= '0' && s[j] <= '9'; j++, digits++) {
        if (digits == 18)
            return -1;
        v = v * 10 + (s[j] - '0');
    }
    return v;
}

/* What counts as output ([stream] output): bits of OUTPUT_*, as sseload.protocol.sse.OUTPUT_KINDS. */
enum { OUTPUT_CONTENT = 1, OUTPUT_REASONING = 2, OUTPUT_TOOL_CALLS = 4 };

static int carries_output(const char *s, Py_ssize_t n, int kinds) {
    if ((kinds & OUTPUT_CONTENT) && (has_text(s, n, "\"content\"", 9) || has_text(s, n, "\"text\"", 6)))
        return 1;
    if ((kinds & OUTPUT_REASONING)
        && (has_text(s, n, "\"reasoning_content\"", 19) || has_text(s, n, "\"reasoning\"", 11)))
        return 1;
    if (!(kinds & OUTPUT_TOOL_CALLS))
        return 0;
    Py_ssize_t from = 0, j;
    while ((j = value_of(s, n, "\"tool_calls\"", 12, &from)) >= 0) {
        if (j < n && s[j] == '[') {
            Py_ssize_t e = skip_blanks(s, n, j + 1);
            if (e < n && s[e] != ']')
                return 1;
        }
    }
    return 0;
}

/* A chunk the response acts on: it ends a choice (a finish_reason string) or reports an error
 * (an "error" object or string, or "object": "error"), as sseload.protocol.sse.openai_notable. */
static int openai_notable(const char *s, Py_ssize_t n) {
    Py_ssize_t from = 0, j;
    while ((j = value_of(s, n, "\"finish_reason\"", 15, &from)) >= 0)
        if (j < n && s[j] == '"')
            return 1;
    from = 0;
    while ((j = value_of(s, n, "\"error\"", 7, &from)) >= 0)
        if (j < n && (s[j] == '{' || s[j] == '"'))
            return 1;
    from = 0;
    while ((j = value_of(s, n, "\"object\"", 8, &from)) >= 0)
        if (j + 7 <= n && memcmp(s + j, "\"error\"", 7) == 0)
            return 1;
    return 0;
}

/* openai: the chunk's facts recorded; 1 when the response must act on it, 0 if not, -1 on error. */
static int openai_facts(EventLog *self, const char *raw, Py_ssize_t n) {
    int64_t completion = number_of(raw, n, "\"completion_tokens\"", 19);
    int64_t prompt = number_of(raw, n, "\"prompt_tokens\"", 15);
    if (prompt >= 0)
        self->prompt_tokens = prompt;
    int out = carries_output(raw, n, self->output_kinds);
    if (ints_push(&self->llm, out + 2 * (completion + 1)) < 0)
        return -1;
    if (out && self->keep_output
        && (buf_put(&self->outputs, raw, n) < 0 || ints_push(&self->output_ends, self->outputs.len) < 0))
        return -1;
    return openai_notable(raw, n);
}

static PyObject *decode(const Buf *b) {
    return PyUnicode_DecodeUTF8(b->p ? b->p : "", b->len, "replace");
}

static int dispatch(EventLog *self, int64_t t_ns, PyObject *notable) {
    const char *raw = self->data.p;
    Py_ssize_t n = self->data.len - 1;  /* without the last "\n" */
    if (!utf8_valid((const unsigned char *)raw, n))
        self->malformed++;
    if (self->t_ns.len == 0 && buf_set(&self->first_id, self->last_id.p ? self->last_id.p : "", self->last_id.len) < 0)
        return -1;
    if (ints_push(&self->t_ns, t_ns) < 0 || ints_push(&self->size, n) < 0
        || ints_push(&self->server_ns, truth_of(self, raw, n)) < 0)
        return -1;
    int chunk_notable = self->openai ? openai_facts(self, raw, n) : 0;
    if (chunk_notable < 0)
        return -1;
    const Buf *type = &self->event_type;
    int typed = type->len && !(type->len == 7 && memcmp(type->p, "message", 7) == 0);
    int sentinel = self->has_sentinel && n == self->sentinel.len
                   && memcmp(raw, self->sentinel.p, n) == 0;
    if (typed || sentinel || chunk_notable) {
        PyObject *event = typed ? decode(type) : PyUnicode_FromString("message");
        PyObject *text = PyUnicode_DecodeUTF8(raw, n, "replace");
        PyObject *id = decode(&self->last_id);
        PyObject *item = NULL;
        if (event && text && id)
            item = PyObject_CallFunction(SSEEvent, "OOOn", event, text, id, n);
        Py_XDECREF(event);
        Py_XDECREF(text);
        Py_XDECREF(id);
        if (!item)
            return -1;
        int rc = PyList_Append(notable, item);
        Py_DECREF(item);
        if (rc < 0)
            return -1;
    }
    self->data.len = 0;
    self->data_lines = 0;
    return 0;
}

static int add_data(EventLog *self, const char *value, Py_ssize_t n) {
    if (buf_reserve(&self->data, n + 1) < 0)
        return -1;
    memcpy(self->data.p + self->data.len, value, n);
    self->data.len += n;
    self->data.p[self->data.len++] = '\n';
    self->data_lines++;
    if (self->data.len - self->data_lines > self->max_event_bytes)
        return check_size(self);
    return 0;
}

static int set_id(EventLog *self, const char *value, Py_ssize_t n) {
    if (memchr(value, 0, n))
        return 0;  /* the spec ignores ids containing NUL */
    return buf_set(&self->last_id, value, n);
}

static int line(EventLog *self, const char *l, Py_ssize_t m, int64_t t_ns, PyObject *notable) {
    if (m >= 6 && memcmp(l, "data: ", 6) == 0)
        return add_data(self, l + 6, m - 6);
    if (m == 0) {
        if (self->data_lines && dispatch(self, t_ns, notable) < 0)
            return -1;
        self->event_type.len = 0;
        return 0;
    }
    if (m >= 4 && memcmp(l, "id: ", 4) == 0)
        return set_id(self, l + 4, m - 4);
    const char *colon = memchr(l, ':', m);
    Py_ssize_t flen = colon ? colon - l : m;
    const char *value = colon ? colon + 1 : l + m;
    Py_ssize_t vlen = colon ? m - flen - 1 : 0;
    if (flen == 0)
        return 0;  /* a comment */
    if (vlen && *value == ' ') {
        value++;
        vlen--;
    }
    if (flen == 4 && memcmp(l, "data", 4) == 0)
        return add_data(self, value, vlen);
    if (flen == 5 && memcmp(l, "event", 5) == 0)
        return buf_set(&self->event_type, value, vlen);
    if (flen == 2 && memcmp(l, "id", 2) == 0)
        return set_id(self, value, vlen);
    if (flen == 5 && memcmp(l, "retry", 5) == 0) {
        Py_ssize_t i = 0;
        while (i < vlen && value[i] >= '0' && value[i] <= '9')
            i++;
        if (vlen == 0 || i < vlen || vlen > MAX_RETRY_DIGITS) {
            self->malformed++;
            return 0;
        }
        long long v = 0;
        for (i = 0; i < vlen; i++)
            v = v * 10 + (value[i] - '0');
        PyObject *retry = PyLong_FromLongLong(v);
        if (!retry)
            return -1;
        Py_SETREF(self->retry, retry);
        return 0;
    }
    self->malformed++;
    return 0;
}

/* The end of the line starting at s[i]: the index of its CR or LF, or n. */
static inline Py_ssize_t line_end(const char *s, Py_ssize_t i, Py_ssize_t n) {
    while (i < n && s[i] != '\n' && s[i] != '\r')
        i++;
    return i;
}

/* Index just past the line end at s[e] (CRLF counts once). */
static inline Py_ssize_t after_end(const char *s, Py_ssize_t e, Py_ssize_t n) {
    return (s[e] == '\r' && e + 1 < n && s[e + 1] == '\n') ? e + 2 : e + 1;
}

static int feed(EventLog *self, const char *s, Py_ssize_t n, int64_t t_ns, PyObject *notable) {
    Buf joined = {0};
    int rc = -1;
    if (self->bom_pending) {
        Py_ssize_t seen = self->pending.len + n;
        if (seen < 3) {
            char head[3];
            memcpy(head, self->pending.p ? self->pending.p : "", self->pending.len);
            memcpy(head + self->pending.len, s, n);
            if (memcmp(head, "\xef\xbb\xbf", seen) == 0)
                return buf_put(&self->pending, s, n);
        }
        self->bom_pending = 0;
        if (self->pending.len) {  /* the stream's first bytes, split across reads */
            if (buf_put(&joined, self->pending.p, self->pending.len) < 0 || buf_put(&joined, s, n) < 0)
                goto done;
            s = joined.p;
            n = joined.len;
            self->pending.len = 0;
        }
        if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
            s += 3;
            n -= 3;
        }
        if (n == 0) {
            rc = 0;
            goto done;
        }
    }
    if (self->cr_pending) {
        self->cr_pending = 0;
        if (s[0] == '\n') {
            s++;
            n--;
            if (n == 0) {
                rc = 0;
                goto done;
            }
        }
    }
    if (s[n - 1] == '\r')
        self->cr_pending = 1;
    Py_ssize_t first = line_end(s, 0, n);
    if (first == n) {  /* no line end yet */
        if (buf_put(&self->pending, s, n) < 0)
            goto done;
        rc = self->data.len + self->pending.len > self->max_event_bytes ? check_size(self) : 0;
        goto done;
    }
    Py_ssize_t last = n - 1;  /* the last line end: what follows it is the new pending tail */
    while (s[last] != '\n' && s[last] != '\r')
        last--;
    const char *l = s;
    Py_ssize_t m = first;
    if (self->pending.len) {  /* the first line began in earlier reads */
        Buf t = self->scratch;
        self->scratch = self->pending;
        self->pending = t;
        if (buf_put(&self->scratch, s, first) < 0)
            goto done;
        l = self->scratch.p;
        m = self->scratch.len;
    }
    if (buf_set(&self->pending, s + last + 1, n - last - 1) < 0)
        goto done;
    Py_ssize_t i = after_end(s, first, n);
    if (line(self, l, m, t_ns, notable) < 0)
        goto done;
    self->scratch.len = 0;
    while (i <= last) {
        Py_ssize_t e = line_end(s, i, n);
        if (line(self, s + i, e - i, t_ns, notable) < 0)
            goto done;
        i = after_end(s, e, n);
    }
    rc = self->data.len + self->pending.len > self->max_event_bytes ? check_size(self) : 0;
done:
    PyMem_Free(joined.p);
    return rc;
}

static int seg_push(EventLog *self, Py_ssize_t off, Py_ssize_t len) {
    return ints_push(&self->segs, off) < 0 ? -1 : ints_push(&self->segs, len);
}

static int framing_error(const char *what) {
    PyErr_Format(SSEProtocolError, "malformed chunked body: %s", what);
    return -1;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One framing line (its LF and one CR before it taken off), as BodyFraming._end_line. */
static int framing_line(EventLog *self, const char *l, Py_ssize_t m) {
    if (m && l[m - 1] == '\r')
        m--;
    switch (self->fstate) {
    case F_SIZE: {
        int64_t size = 0;
        Py_ssize_t i = 0;
        int v;
        while (i < m && (v = hex_value(l[i])) >= 0) {
            if (++i > 15)  /* as the specification's {1,15}; and no int64 overflow */
                return framing_error("a bad chunk-size line");
            size = size * 16 + v;
        }
        if (i == 0)
            return framing_error("a bad chunk-size line");
        while (i < m && (l[i] == ' ' || l[i] == '\t'))
            i++;
        if (i < m && l[i] != ';')
            return framing_error("a bad chunk-size line");
        self->left = size;
        self->fstate = size ? F_DATA : F_TRAILER;
        return 0;
    }
    case F_DATA_END:
        if (m)
            return framing_error("chunk data longer than its size");
        self->fstate = F_SIZE;
        return 0;
    default:  /* F_TRAILER: an empty line ends the trailers and the body */
        if (!m)
            self->fstate = F_COMPLETE;
        return 0;
    }
}

/* This read's content as segments of it (self->segs), as BodyFraming.feed. */
static int deframe(EventLog *self, const char *s, Py_ssize_t n) {
    self->segs.len = 0;
    if (self->complete)
        return 0;
    if (self->framing == FRAMING_LENGTH) {
        Py_ssize_t take = n < self->left ? n : (Py_ssize_t)self->left;
        self->left -= take;
        self->complete = self->left == 0;
        return seg_push(self, 0, take);
    }
    Py_ssize_t i = 0;
    while (i < n && self->fstate != F_COMPLETE) {
        if (self->fstate == F_DATA) {
            Py_ssize_t take = n - i < self->left ? n - i : (Py_ssize_t)self->left;
            if (seg_push(self, i, take) < 0)
                return -1;
            i += take;
            self->left -= take;
            if (self->left == 0)
                self->fstate = F_DATA_END;
            continue;
        }
        const char *lf = memchr(s + i, '\n', n - i);
        if (!lf) {
            if (buf_put(&self->fline, s + i, n - i) < 0)
                return -1;
            if (self->fline.len > MAX_FRAMING_LINE)
                return framing_error("a framing line over 16384 bytes");
            break;
        }
        Py_ssize_t j = lf - s;
        const char *l = s + i;
        Py_ssize_t m = j - i;
        if (self->fline.len) {
            if (buf_put(&self->fline, s + i, j - i) < 0)
                return -1;
            l = self->fline.p;
            m = self->fline.len;
        }
        i = j + 1;
        if (m > MAX_FRAMING_LINE)
            return framing_error("a framing line over 16384 bytes");
        int rc = framing_line(self, l, m);
        self->fline.len = 0;
        if (rc < 0)
            return -1;
    }
    self->complete = self->fstate == F_COMPLETE;
    return 0;
}

/* One read, from its bytes to recorded events: a new list of the events to act on, or NULL
 * with SSEProtocolError set (then none of the read's events are kept, as in SSEParser.feed). */
static PyObject *feed_read(EventLog *self, const char *buf, Py_ssize_t len, int64_t t_ns) {
    self->bytes_in += len;
    self->last_t_ns = t_ns;
    PyObject *notable = PyList_New(0);
    if (!notable)
        return NULL;
    Py_ssize_t before = self->t_ns.len;
    int64_t prompt_before = self->prompt_tokens;
    Py_ssize_t outputs_before = self->output_ends.len;
    int rc = 0;
    if (!len) {
    } else if (self->framing == FRAMING_NONE) {
        rc = feed(self, buf, len, t_ns, notable);
    } else if ((rc = deframe(self, buf, len)) == 0) {
        for (Py_ssize_t k = 0; k < self->segs.len && rc == 0; k += 2)
            if (self->segs.p[k + 1])
                rc = feed(self, buf + self->segs.p[k], self->segs.p[k + 1], t_ns, notable);
    }
    if (rc < 0) {  /* a read that raises records none of its events, nor what they said */
        self->t_ns.len = self->size.len = self->server_ns.len = before;
        if (self->openai) {
            self->llm.len = before;
            self->prompt_tokens = prompt_before;
            self->output_ends.len = outputs_before;
            self->outputs.len = outputs_before ? (Py_ssize_t)self->output_ends.p[outputs_before - 1] : 0;
        }
        if (before == 0)
            self->first_id.len = 0;
        Py_DECREF(notable);
        return NULL;
    }
    return notable;
}

static PyObject *EventLog_feed(EventLog *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "feed(chunk, t_ns) takes 2 arguments");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    long long t_ns = PyLong_AsLongLong(args[1]);
    PyObject *notable = NULL;
    if (!(t_ns == -1 && PyErr_Occurred()))
        notable = feed_read(self, view.buf, view.len, t_ns);
    PyBuffer_Release(&view);
    return notable;
}

/* For sseload._reader, through the capsule sseload._sse._feed_api: the reader thread's reads
 * go into a stream's log without a bytes object or a Python call per read. NULL with an
 * exception set, or a new reference: None when the read left nothing to act on (no typed or
 * sentinel event, body not complete), else the list of events to act on (maybe empty). */
static PyObject *feed_api(PyObject *log, const char *buf, Py_ssize_t len, int64_t t_ns) {
    EventLog *self = (EventLog *)log;
    PyObject *notable = feed_read(self, buf, len, t_ns);
    if (notable && PyList_GET_SIZE(notable) == 0 && !self->complete) {
        Py_DECREF(notable);
        Py_RETURN_NONE;
    }
    return notable;
}

static PyObject *EventLog_arrays(EventLog *self, PyObject *Py_UNUSED(ignored)) {
    Py_ssize_t n = self->t_ns.len * (Py_ssize_t)sizeof(int64_t);
    if (n == 0)  /* (NULL, 0) would build None */
        return Py_BuildValue("(y#y#y#)", "", n, "", n, "", n);
    return Py_BuildValue("(y#y#y#)", (const char *)self->t_ns.p, n, (const char *)self->size.p, n,
                         (const char *)self->server_ns.p, n);
}

/* times(start): the event times from event `start` on, as int64 bytes (the live view reads an
 * open stream's new events with it: sseload.views.live). */
static PyObject *EventLog_times(EventLog *self, PyObject *arg) {
    Py_ssize_t start = PyLong_AsSsize_t(arg);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    if (start < 0)
        start = 0;
    if (start >= self->t_ns.len)
        return PyBytes_FromStringAndSize("", 0);
    return PyBytes_FromStringAndSize((const char *)(self->t_ns.p + start),
                                     (self->t_ns.len - start) * (Py_ssize_t)sizeof(int64_t));
}

static PyObject *EventLog_llm(EventLog *self, PyObject *Py_UNUSED(ignored)) {
    return PyBytes_FromStringAndSize(self->llm.p ? (const char *)self->llm.p : "",
                                     self->llm.len * (Py_ssize_t)sizeof(int64_t));
}

static PyObject *EventLog_outputs(EventLog *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *list = PyList_New(self->output_ends.len);
    if (!list)
        return NULL;
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < self->output_ends.len; i++) {
        Py_ssize_t end = (Py_ssize_t)self->output_ends.p[i];
        PyObject *text = PyUnicode_DecodeUTF8(self->outputs.p + start, end - start, "replace");
        if (!text) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, text);
        start = end;
    }
    return list;
}

static int EventLog_init(EventLog *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"max_event_bytes", "truth_key", "sentinel", "chunked", "length", "openai",
                             "keep_output", "output_kinds", NULL};
    Py_ssize_t max_event_bytes = 1 << 24;
    const char *key = NULL, *sentinel = NULL;
    Py_ssize_t key_len = 0, sentinel_len = 0;
    int chunked = 0;
    long long length = -1;
    int openai = 0, keep_output = 0, output_kinds = OUTPUT_CONTENT | OUTPUT_REASONING | OUTPUT_TOOL_CALLS;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|nz#z#pLppi:EventLog", kwlist, &max_event_bytes, &key, &key_len,
                                     &sentinel, &sentinel_len, &chunked, &length, &openai, &keep_output,
                                     &output_kinds))
        return -1;
    self->output_kinds = output_kinds;
    self->openai = openai;
    self->keep_output = openai && keep_output;
    self->outputs.len = self->output_ends.len = 0;
    self->llm.len = 0;
    self->prompt_tokens = -1;
    self->framing = chunked ? FRAMING_CHUNKED : length >= 0 ? FRAMING_LENGTH : FRAMING_NONE;
    self->fstate = F_SIZE;
    self->left = chunked ? 0 : length;
    self->fline.len = 0;
    self->complete = !chunked && length == 0;
    self->bytes_in = 0;
    self->last_t_ns = -1;
    self->max_event_bytes = max_event_bytes;
    self->bom_pending = 1;
    Py_XSETREF(self->retry, Py_NewRef(Py_None));
    if (key && buf_set(&self->truth_key, key, key_len) < 0)
        return -1;
    self->has_sentinel = sentinel != NULL;
    if (sentinel && buf_set(&self->sentinel, sentinel, sentinel_len) < 0)
        return -1;
    return 0;
}

static void EventLog_dealloc(EventLog *self) {
    Buf *bufs[] = {&self->pending, &self->scratch, &self->data, &self->event_type, &self->last_id, &self->first_id,
                   &self->truth_key, &self->sentinel, &self->fline, &self->outputs};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        PyMem_Free(bufs[i]->p);
    PyMem_Free(self->t_ns.p);
    PyMem_Free(self->size.p);
    PyMem_Free(self->server_ns.p);
    PyMem_Free(self->llm.p);
    PyMem_Free(self->output_ends.p);
    PyMem_Free(self->segs.p);
    Py_XDECREF(self->retry);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t EventLog_len(EventLog *self) { return self->t_ns.len; }

static PyObject *EventLog_get_first_t_ns(EventLog *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(self->t_ns.len ? self->t_ns.p[0] : -1);
}

static PyObject *EventLog_get_last_event_id(EventLog *self, void *Py_UNUSED(c)) {
    return decode(&self->last_id);
}

static PyObject *EventLog_get_prompt_tokens(EventLog *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(self->prompt_tokens);
}

static PyObject *EventLog_get_first_event_id(EventLog *self, void *Py_UNUSED(c)) {
    return decode(&self->first_id);
}

static PyObject *EventLog_get_retry(EventLog *self, void *Py_UNUSED(c)) {
    return Py_NewRef(self->retry);
}

static PyObject *EventLog_get_malformed(EventLog *self, void *Py_UNUSED(c)) {
    return PyLong_FromSsize_t(self->malformed);
}

static PyObject *EventLog_get_max_event_bytes(EventLog *self, void *Py_UNUSED(c)) {
    return PyLong_FromSsize_t(self->max_event_bytes);
}

static PyObject *EventLog_get_complete(EventLog *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->complete);
}

static PyObject *EventLog_get_bytes_in(EventLog *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(self->bytes_in);
}

static PyObject *EventLog_get_last_t_ns(EventLog *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(self->last_t_ns);
}

static PyGetSetDef EventLog_getset[] = {
    {"bytes_in", (getter)EventLog_get_bytes_in, NULL, "Bytes fed so far, framing and all.", NULL},
    {"last_t_ns", (getter)EventLog_get_last_t_ns, NULL, "Time of the last read fed, -1 before one.", NULL},
    {"first_t_ns", (getter)EventLog_get_first_t_ns, NULL, "Time of the first event, -1 before it.", NULL},
    {"last_event_id", (getter)EventLog_get_last_event_id, NULL, NULL, NULL},
    {"prompt_tokens", (getter)EventLog_get_prompt_tokens, NULL, "openai: the last usage.prompt_tokens, -1 before one.",
     NULL},
    {"first_event_id", (getter)EventLog_get_first_event_id, NULL,
     "The event id in effect at the first event (\"\" before it, or without ids).", NULL},
    {"retry", (getter)EventLog_get_retry, NULL, NULL, NULL},
    {"malformed", (getter)EventLog_get_malformed, NULL, NULL, NULL},
    {"max_event_bytes", (getter)EventLog_get_max_event_bytes, NULL, NULL, NULL},
    {"complete", (getter)EventLog_get_complete, NULL,
     "The body's framing says it is over (never, for a body without framing).", NULL},
    {NULL},
};

static PyMethodDef EventLog_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))EventLog_feed, METH_FASTCALL,
     "feed(chunk, t_ns) -> the typed and sentinel events it completed; all are recorded."},
    {"llm", (PyCFunction)EventLog_llm, METH_NOARGS,
     "llm() -> bytes: openai: per event, output (1/0) + 2 * (usage.completion_tokens + 1), as int64."},
    {"outputs", (PyCFunction)EventLog_outputs, METH_NOARGS,
     "outputs() -> list[str]: keep_output: the data of each chunk that carried output, in order."},
    {"times", (PyCFunction)EventLog_times, METH_O,
     "times(start) -> bytes: the event times from event start on, as int64."},
    {"arrays", (PyCFunction)EventLog_arrays, METH_NOARGS,
     "(t_ns, size, server_ns) of the recorded events, as native int64 bytes."},
    {NULL},
};

static PySequenceMethods EventLog_as_sequence = {.sq_length = (lenfunc)EventLog_len};

static PyTypeObject EventLogType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sseload._sse.EventLog",
    .tp_doc = "One stream's events as flat arrays (see sseload.protocol.sse.PyEventLog, its specification).",
    .tp_basicsize = sizeof(EventLog),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)EventLog_init,
    .tp_dealloc = (destructor)EventLog_dealloc,
    .tp_methods = EventLog_methods,
    .tp_getset = EventLog_getset,
    .tp_as_sequence = &EventLog_as_sequence,
};

static struct PyModuleDef sse_module = {
    PyModuleDef_HEAD_INIT, "sseload._sse", NULL, -1, NULL,
};

PyMODINIT_FUNC PyInit__sse(void) {
    /* The types live apart from sseload.protocol.sse, which imports this module: no import cycle. */
    PyObject *sse = PyImport_ImportModule("sseload.protocol.sse_types");
    if (!sse)
        return NULL;
    SSEEvent = PyObject_GetAttrString(sse, "SSEEvent");
    SSEProtocolError = PyObject_GetAttrString(sse, "SSEProtocolError");
    Py_DECREF(sse);
    if (!SSEEvent || !SSEProtocolError || PyType_Ready(&EventLogType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&sse_module);
    if (!m)
        return NULL;
    static sse_feed_api api = {SSE_FEED_API_VERSION, &EventLogType, feed_api};
    PyObject *capsule = PyCapsule_New(&api, SSE_FEED_API_NAME, NULL);
    if (!capsule || PyModule_AddObjectRef(m, "EventLog", (PyObject *)&EventLogType) < 0
        || PyModule_AddObjectRef(m, "_feed_api", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(m);
        return NULL;
    }
    Py_DECREF(capsule);
    return m;
}
