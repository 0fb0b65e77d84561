/* sseload._sse: the EventLog type's Python face (its definition: sse.py's PyEventLog), the module,
 * and the capsule sseload._reader feeds logs through (sseload/_sse_api.h). What the log does per
 * read is sse.c; _sse.h says which source twins which Python module. */
#include "_sse.h"
#include "../_sse_api.h"

PyObject *SSEEvent;
PyObject *SSEProtocolError;

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
        notable = sse_feed_read(self, view.buf, view.len, t_ns);
    PyBuffer_Release(&view);
    return notable;
}

/* For sseload._reader, through the capsule sseload._sse._feed_api: the reader thread's reads
 * go into a stream's log without a bytes object or a Python call per read. NULL with an
 * exception set, or a new reference: None when the read left nothing to act on (no typed or
 * sentinel event, body not complete), else the list of events to act on (maybe empty). */
static PyObject *feed_api(PyObject *log, const char *buf, Py_ssize_t len, int64_t t_ns) {
    EventLog *self = (EventLog *)log;
    PyObject *notable = sse_feed_read(self, buf, len, t_ns);
    if (notable && PyList_GET_SIZE(notable) == 0 && !self->framing.complete) {
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

/* spill(): (t_ns, size, server_ns, llm) of the events held, as arrays() and llm() give them, and none
 * held after: the recorder takes a long stream's events while it is open (sseload.record.recorder). */
static PyObject *EventLog_spill(EventLog *self, PyObject *Py_UNUSED(ignored)) {
    Py_ssize_t n = self->t_ns.len * (Py_ssize_t)sizeof(int64_t);
    Py_ssize_t n_llm = self->llm.len * (Py_ssize_t)sizeof(int64_t);
    PyObject *taken = Py_BuildValue("(y#y#y#y#)", n ? (const char *)self->t_ns.p : "", n,
                                    n ? (const char *)self->size.p : "", n, n ? (const char *)self->server_ns.p : "", n,
                                    n_llm ? (const char *)self->llm.p : "", n_llm);
    if (!taken || !self->t_ns.len)
        return taken;
    if (!self->spilled)
        self->spilled_first_t = self->t_ns.p[0];
    self->spilled_last_t = self->t_ns.p[self->t_ns.len - 1];
    self->spilled += self->t_ns.len;
    Ints *held[] = {&self->t_ns, &self->size, &self->server_ns, &self->llm};
    for (size_t i = 0; i < 4; i++) {  /* given back: a stream's memory is what it holds now */
        PyMem_Free(held[i]->p);
        held[i]->p = NULL;
        held[i]->len = held[i]->cap = 0;
    }
    return taken;
}

/* The index among the events held of the stream's event `start` (events spilled come first). */
static int held_index(EventLog *self, PyObject *arg, Py_ssize_t *start) {
    *start = PyLong_AsSsize_t(arg);
    if (*start == -1 && PyErr_Occurred())
        return -1;
    *start -= self->spilled;
    if (*start < 0)
        *start = 0;
    return 0;
}

/* times(start): the event times from event `start` on, as int64 bytes (the live view reads an
 * open stream's new events with it: sseload.views.live); of those spilled, none. */
static PyObject *EventLog_times(EventLog *self, PyObject *arg) {
    Py_ssize_t start;
    if (held_index(self, arg, &start) < 0)
        return NULL;
    if (start >= self->t_ns.len)
        return PyBytes_FromStringAndSize("", 0);
    return PyBytes_FromStringAndSize((const char *)(self->t_ns.p + start),
                                     (self->t_ns.len - start) * (Py_ssize_t)sizeof(int64_t));
}

/* llm(start=0): with a program, per event from event `start` on, output kinds + KIND_BITS * (output
 * tokens + 1), as int64 bytes (the live view counts an open stream's new tokens with it). */
static PyObject *EventLog_llm(EventLog *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t start = 0;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "llm() takes at most one argument (start)");
        return NULL;
    }
    if (nargs == 1 && held_index(self, args[0], &start) < 0)
        return NULL;
    if (!self->llm.p || start >= self->llm.len)
        return PyBytes_FromStringAndSize("", 0);
    return PyBytes_FromStringAndSize((const char *)(self->llm.p + start),
                                     (self->llm.len - start) * (Py_ssize_t)sizeof(int64_t));
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

/* A program compiled once and shared by every log given the same Program (a run's): its rules
 * point into the blob it keeps alive. */
typedef struct {
    ScanProgram prog;
    PyObject *blob;
} CompiledProgram;

static void CompiledProgram_free(PyObject *capsule) {
    CompiledProgram *c = PyCapsule_GetPointer(capsule, NULL);
    Py_XDECREF(c->blob);
    PyMem_Free(c);
}

static PyObject *cached_blob, *cached_program;  /* the last program compiled, by its blob */

/* A new reference to the capsule of `program`'s compiled rules (sseload.protocol.scan.Program, whose
 * blob attribute is the bytes; or those bytes), or NULL with an exception set. */
static PyObject *compiled_program(PyObject *program) {
    PyObject *blob = PyBytes_Check(program) ? Py_NewRef(program) : PyObject_GetAttrString(program, "blob");
    if (!blob)
        return NULL;
    if (!PyBytes_Check(blob)) {
        Py_DECREF(blob);
        PyErr_SetString(PyExc_TypeError, "program.blob must be bytes (sseload.protocol.scan.Program)");
        return NULL;
    }
    if (blob == cached_blob) {
        Py_DECREF(blob);
        return Py_NewRef(cached_program);
    }
    CompiledProgram *c = PyMem_Malloc(sizeof *c);
    if (!c) {
        Py_DECREF(blob);
        return PyErr_NoMemory();
    }
    c->blob = blob;
    PyObject *capsule = NULL;
    if (sse_scan_compile(&c->prog, PyBytes_AS_STRING(blob), PyBytes_GET_SIZE(blob)) < 0
        || !(capsule = PyCapsule_New(c, NULL, CompiledProgram_free))) {
        Py_DECREF(blob);
        PyMem_Free(c);
        return NULL;
    }
    Py_XSETREF(cached_blob, Py_NewRef(blob));
    Py_XSETREF(cached_program, Py_NewRef(capsule));
    return capsule;
}

static int EventLog_init(EventLog *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"max_event_bytes", "truth_key", "sentinel", "chunked", "length", "program",
                             "keep_output", "output_kinds", "done_event", NULL};
    Py_ssize_t max_event_bytes = 1 << 24;
    const char *key = NULL, *sentinel = NULL;
    Py_ssize_t key_len = 0, sentinel_len = 0;
    int chunked = 0;
    long long length = -1;
    int keep_output = 0, output_kinds = OUTPUT_ALL;
    PyObject *program = Py_None;
    const char *done_event = NULL;
    Py_ssize_t done_event_len = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|nz#z#pLOpiz#:EventLog", kwlist, &max_event_bytes, &key, &key_len,
                                     &sentinel, &sentinel_len, &chunked, &length, &program, &keep_output,
                                     &output_kinds, &done_event, &done_event_len))
        return -1;
    Py_CLEAR(self->program_ref);
    self->program = NULL;
    if (program != Py_None) {
        if (!(self->program_ref = compiled_program(program)))
            return -1;
        self->program = &((CompiledProgram *)PyCapsule_GetPointer(self->program_ref, NULL))->prog;
    }
    self->has_done_event = done_event != NULL;
    if (done_event && buf_set(&self->done_event, done_event, done_event_len) < 0)
        return -1;
    self->output_kinds = output_kinds;
    self->keep_output = self->program != NULL && keep_output;
    self->outputs.len = self->output_ends.len = 0;
    self->llm.len = 0;
    self->prompt_tokens = self->reasoning_tokens = self->cached_tokens = -1;
    sse_framing_init(&self->framing, chunked, length);
    self->bytes_in = 0;
    self->last_t_ns = -1;
    self->t_ns.len = self->size.len = self->server_ns.len = self->spilled = 0;
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
                   &self->truth_key, &self->sentinel, &self->outputs, &self->done_event};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        PyMem_Free(bufs[i]->p);
    PyMem_Free(self->t_ns.p);
    PyMem_Free(self->size.p);
    PyMem_Free(self->server_ns.p);
    PyMem_Free(self->llm.p);
    PyMem_Free(self->output_ends.p);
    Py_XDECREF(self->program_ref);
    sse_framing_free(&self->framing);
    Py_XDECREF(self->retry);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t EventLog_len(EventLog *self) { return self->spilled + self->t_ns.len; }

static PyObject *EventLog_get_first_t_ns(EventLog *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(self->spilled ? self->spilled_first_t : self->t_ns.len ? self->t_ns.p[0] : -1);
}

static PyObject *EventLog_get_last_event_t_ns(EventLog *self, void *Py_UNUSED(c)) {
    Py_ssize_t n = self->t_ns.len;
    return PyLong_FromLongLong(n ? self->t_ns.p[n - 1] : self->spilled ? self->spilled_last_t : -1);
}

static PyObject *EventLog_get_held(EventLog *self, void *Py_UNUSED(c)) {
    return PyLong_FromSsize_t(self->t_ns.len);
}

static PyObject *EventLog_get_spilled(EventLog *self, void *Py_UNUSED(c)) {
    return PyLong_FromSsize_t(self->spilled);
}

static PyObject *EventLog_get_last_event_id(EventLog *self, void *Py_UNUSED(c)) {
    return buf_decode(&self->last_id);
}

static PyObject *EventLog_get_prompt_tokens(EventLog *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(self->prompt_tokens);
}

static PyObject *EventLog_get_reasoning_tokens(EventLog *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(self->reasoning_tokens);
}

static PyObject *EventLog_get_cached_tokens(EventLog *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(self->cached_tokens);
}

static PyObject *EventLog_get_first_event_id(EventLog *self, void *Py_UNUSED(c)) {
    return buf_decode(&self->first_id);
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
    return PyBool_FromLong(self->framing.complete);
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
    {"last_event_t_ns", (getter)EventLog_get_last_event_t_ns, NULL, "Time of the last event, -1 before one.", NULL},
    {"held", (getter)EventLog_get_held, NULL, "Events held in memory (not spilled).", NULL},
    {"spilled", (getter)EventLog_get_spilled, NULL, "Events spill() took off, before those held.", NULL},
    {"last_event_id", (getter)EventLog_get_last_event_id, NULL, NULL, NULL},
    {"prompt_tokens", (getter)EventLog_get_prompt_tokens, NULL, "The last prompt tokens a usage gave, -1 before one.",
     NULL},
    {"reasoning_tokens", (getter)EventLog_get_reasoning_tokens, NULL,
     "The last reasoning tokens a usage gave, -1 before one.", NULL},
    {"cached_tokens", (getter)EventLog_get_cached_tokens, NULL,
     "The last cached prompt tokens a usage gave, -1 before one.", NULL},
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
    {"llm", (PyCFunction)(void (*)(void))EventLog_llm, METH_FASTCALL,
     "llm(start=0) -> bytes: with a program, per event from event start on, output kinds + 8 * (output tokens + 1), "
     "as int64."},
    {"outputs", (PyCFunction)EventLog_outputs, METH_NOARGS,
     "outputs() -> list[str]: keep_output: the data of each chunk that carried output, in order."},
    {"times", (PyCFunction)EventLog_times, METH_O,
     "times(start) -> bytes: the event times from event start on, as int64."},
    {"arrays", (PyCFunction)EventLog_arrays, METH_NOARGS,
     "(t_ns, size, server_ns) of the events held, as native int64 bytes."},
    {"spill", (PyCFunction)EventLog_spill, METH_NOARGS,
     "spill() -> (*arrays(), llm()) of the events held, which are then no longer held."},
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
