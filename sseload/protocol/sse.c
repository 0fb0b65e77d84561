/* The compiled twin of sseload/protocol/sse.py's event log (PyEventLog.feed): a read's events
 * parsed by the WHATWG rules (as SSEParser) and recorded, with no Python object per event. Only
 * the events the caller must act on (a typed event such as `done` or `error`, the data sentinel
 * such as `[DONE]`, and with a program the chunks it says to act on) come back, as
 * sseload.protocol.sse_types.SSEEvent tuples. Given the body's framing, it is taken off first
 * (framing.c), so a read goes from the socket to events in this one call. */
#include "_sse.h"

#define MAX_RETRY_DIGITS 18  /* longer is not a reconnection time: malformed (as sseload.protocol.sse) */

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
 * ends (so a 1 MiB data line fits a 1 MiB limit), as SSEParser._check_size. */
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

/* With a program: the chunk's facts recorded (as PyEventLog._llm_chunk); 1 when the response must
 * act on it, 0 if not, -1 on error. */
static int llm_chunk(EventLog *self, const char *raw, Py_ssize_t n) {
    ScanFacts f;
    sse_scan(self->program, raw, n, &f);
    int kinds = f.kinds & self->output_kinds;
    if (f.numbers[1] >= 0)
        self->prompt_tokens = f.numbers[1];
    if (f.numbers[2] >= 0)
        self->reasoning_tokens = f.numbers[2];
    if (f.numbers[3] >= 0)
        self->cached_tokens = f.numbers[3];
    if (ints_push(&self->llm, kinds + KIND_BITS * (f.numbers[0] + 1)) < 0)
        return -1;
    if (kinds && self->keep_output
        && (buf_put(&self->outputs, raw, n) < 0 || ints_push(&self->output_ends, self->outputs.len) < 0))
        return -1;
    return f.act;
}

static int dispatch(EventLog *self, int64_t t_ns, PyObject *notable) {
    const char *raw = self->data.p;
    Py_ssize_t n = self->data.len - 1;  /* without the last "\n" */
    if (!utf8_valid((const unsigned char *)raw, n))
        self->malformed++;
    int first = self->t_ns.len == 0 && self->spilled == 0;
    if (first && buf_set(&self->first_id, self->last_id.p ? self->last_id.p : "", self->last_id.len) < 0)
        return -1;
    if (ints_push(&self->t_ns, t_ns) < 0 || ints_push(&self->size, n) < 0
        || ints_push(&self->server_ns, truth_of(self, raw, n)) < 0)
        return -1;
    int chunk_notable = self->program ? llm_chunk(self, raw, n) : 0;
    if (chunk_notable < 0)
        return -1;
    const Buf *type = &self->event_type;
    int typed = type->len && !(type->len == 7 && memcmp(type->p, "message", 7) == 0);
    int sentinel = self->has_sentinel && n == self->sentinel.len
                   && memcmp(raw, self->sentinel.p, n) == 0;
    int act;
    if (!self->program)
        act = typed || sentinel;
    else
        act = chunk_notable || first || sentinel
              || (typed && ((type->len == 5 && memcmp(type->p, "error", 5) == 0)
                            || (self->has_done_event && type->len == self->done_event.len
                                && memcmp(type->p, self->done_event.p, type->len) == 0)));
    if (act) {
        PyObject *event = typed ? buf_decode(type) : PyUnicode_FromString("message");
        PyObject *text = PyUnicode_DecodeUTF8(raw, n, "replace");
        PyObject *id = buf_decode(&self->last_id);
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

/* One read, from its bytes to recorded events: a new list of the events to act on, or NULL
 * with SSEProtocolError set (then none of the read's events are kept, as in SSEParser.feed). */
PyObject *sse_feed_read(EventLog *self, const char *buf, Py_ssize_t len, int64_t t_ns) {
    self->bytes_in += len;
    self->last_t_ns = t_ns;
    PyObject *notable = PyList_New(0);
    if (!notable)
        return NULL;
    Py_ssize_t before = self->t_ns.len;
    int64_t prompt_before = self->prompt_tokens, reasoning_before = self->reasoning_tokens,
            cached_before = self->cached_tokens;
    Py_ssize_t outputs_before = self->output_ends.len;
    int rc = 0;
    if (!len) {
    } else if (self->framing.kind == FRAMING_NONE) {
        rc = feed(self, buf, len, t_ns, notable);
    } else if ((rc = sse_deframe(&self->framing, buf, len)) == 0) {
        const Ints *segs = &self->framing.segs;
        for (Py_ssize_t k = 0; k < segs->len && rc == 0; k += 2)
            if (segs->p[k + 1])
                rc = feed(self, buf + segs->p[k], segs->p[k + 1], t_ns, notable);
    }
    if (rc < 0) {  /* a read that raises records none of its events, nor what they said */
        self->t_ns.len = self->size.len = self->server_ns.len = before;
        if (self->program) {
            self->llm.len = before;
            self->prompt_tokens = prompt_before;
            self->reasoning_tokens = reasoning_before;
            self->cached_tokens = cached_before;
            self->output_ends.len = outputs_before;
            self->outputs.len = outputs_before ? (Py_ssize_t)self->output_ends.p[outputs_before - 1] : 0;
        }
        if (before == 0 && self->spilled == 0)
            self->first_id.len = 0;
        Py_DECREF(notable);
        return NULL;
    }
    return notable;
}
