/* sseload._sse, the compiled twin of the event log: what its sources share (private to them).
 *
 * One extension, one source per concept, each beside the Python module that defines it:
 *   framing.c       framing.py  an HTTP/1.1 body's framing taken off (BodyFraming)
 *   scan.c          scan.py     an LLM chunk scanned by a dialect's program (scan)
 *   sse.c           sse.py      the WHATWG parser recording into the log (SSEParser, PyEventLog.feed)
 *   _sse_module.c   sse.py      the EventLog type's Python face, and the capsule for sseload._reader
 *                               (sseload/_sse_api.h)
 * The Python modules are the specification; CONTRIBUTING.md says how the two are kept equal.
 */
#ifndef SSELOAD_PROTOCOL_SSE_H
#define SSELOAD_PROTOCOL_SSE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

extern PyObject *SSEEvent;          /* sseload.protocol.sse_types.SSEEvent */
extern PyObject *SSEProtocolError;  /* sseload.protocol.sse_types.SSEProtocolError */

/* --- growable buffers --- */

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

static inline int buf_reserve(Buf *b, Py_ssize_t extra) {
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

static inline int buf_put(Buf *b, const char *s, Py_ssize_t n) {
    if (n <= 0)
        return 0;
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static inline int buf_set(Buf *b, const char *s, Py_ssize_t n) {
    b->len = 0;
    return buf_put(b, s, n);
}

static inline PyObject *buf_decode(const Buf *b) {
    return PyUnicode_DecodeUTF8(b->p ? b->p : "", b->len, "replace");
}

typedef struct {
    int64_t *p;
    Py_ssize_t len, cap;
} Ints;

static inline int ints_push(Ints *a, int64_t v) {
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

/* --- framing.c: framing.py's BodyFraming --- */

enum { FRAMING_NONE, FRAMING_LENGTH, FRAMING_CHUNKED };

typedef struct {
    int kind;         /* FRAMING_*: none (the close ends the body), a Content-Length, or chunked */
    int state;        /* chunked: where in the chunks (framing.c) */
    int64_t left;     /* bytes left of the body (length) or of the chunk (chunked) */
    Buf line;         /* a framing line begun in earlier reads */
    int complete;     /* the framing says the body is over */
    Ints segs;        /* the last read's content: (offset, length) pairs into that read */
} Framing;

void sse_framing_init(Framing *f, int chunked, long long length);
/* A read's content as segments of it (f->segs): 0, or -1 with SSEProtocolError set. */
int sse_deframe(Framing *f, const char *s, Py_ssize_t n);
void sse_framing_free(Framing *f);

/* --- scan.c: scan.py's scan --- */

/* Output kinds, as bits: sseload.protocol.scan's ANSWER, REASONING, TOOL. */
enum { OUTPUT_CONTENT = 1, OUTPUT_REASONING = 2, OUTPUT_TOOL_CALLS = 4 };
#define OUTPUT_ALL (OUTPUT_CONTENT | OUTPUT_REASONING | OUTPUT_TOOL_CALLS)
#define KIND_BITS 8   /* sse.py's KIND_BITS: llm() packs kinds + KIND_BITS * (output tokens + 1) */
#define SCAN_MAX_RULES 48
#define SCAN_MAX_VALUES 8

typedef struct {
    const char *p;
    Py_ssize_t len;
} Str;

typedef struct {
    char op;          /* 'O' output, 'N' a usage number, 'A' act on the event */
    int kind;         /* O: the output kind's bit */
    char arg;         /* O: the shape (s, l, o); N: which number (c, p, r, k) */
    int number;       /* N: its index in ScanFacts.numbers */
    Str key, cond;    /* quoted keys; cond empty: none */
    int negate;
    int nvalues;
    Str values[SCAN_MAX_VALUES];
} ScanRule;

typedef struct {
    int nrules;
    ScanRule rules[SCAN_MAX_RULES];
} ScanProgram;

typedef struct {
    int kinds;
    int64_t numbers[4];  /* output, prompt, reasoning, cached tokens; -1: absent */
    int act;
} ScanFacts;

/* Read Program.blob() into prog (its strings point into blob): 0, or -1 with ValueError set. */
int sse_scan_compile(ScanProgram *prog, const char *blob, Py_ssize_t len);
void sse_scan(const ScanProgram *prog, const char *s, Py_ssize_t n, ScanFacts *f);

/* --- the log (sse.c: the parser and what it records; _sse_module.c: the Python type) --- */

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
    Ints t_ns, size, server_ns;  /* the events held: those not yet spilled */
    Py_ssize_t spilled;  /* events taken off by spill() (the recorder's), before those held */
    int64_t spilled_first_t, spilled_last_t;  /* the times of the first and last of them */
    PyObject *program_ref;  /* the compiled program's capsule, shared by the run's logs (_sse_module.c) */
    const ScanProgram *program;  /* NULL: plain SSE; else an LLM API's chunks, read by the dialect's program */
    Buf done_event;   /* with a program: the typed event, besides error, returned to act on */
    int has_done_event;
    Ints llm;         /* per event, output kinds + KIND_BITS * (output tokens + 1) */
    int64_t prompt_tokens, reasoning_tokens, cached_tokens;  /* the last seen of each, -1 before one */
    int output_kinds; /* which kinds count as output (OUTPUT_* bits) */
    int keep_output;  /* keep the data of each chunk carrying output (a tokenizer, a conversation) */
    Buf outputs;      /* keep_output: those chunks' data, one after another */
    Ints output_ends; /* keep_output: where each one ends in outputs */
    Framing framing;  /* the body's framing, taken off before parsing */
    long long bytes_in;   /* every byte fed, framing and all */
    int64_t last_t_ns;    /* the time of the last read fed, -1 before one */
} EventLog;

/* One read, from its bytes to recorded events, as PyEventLog.feed: a new list of the events to act
 * on, or NULL with SSEProtocolError set (then none of the read's events are kept). */
PyObject *sse_feed_read(EventLog *self, const char *buf, Py_ssize_t len, int64_t t_ns);

#endif
