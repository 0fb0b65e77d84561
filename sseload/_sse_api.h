/* The C interface sseload._sse offers sseload._reader, as the capsule sseload._sse._feed_api.
 *
 * The reader's dispatch feeds a read straight into a stream's compiled EventLog, without a
 * bytes object or a Python call per read; Python hears of the read only when it completed
 * something to act on (see feed below, and sseload.reactor.NativeReactor.route_body). */
#ifndef SSELOAD_SSE_API_H
#define SSELOAD_SSE_API_H

#include <Python.h>
#include <stdint.h>

#define SSE_FEED_API_NAME "sseload._sse._feed_api"
#define SSE_FEED_API_VERSION 1

typedef struct {
    int version;                /* SSE_FEED_API_VERSION */
    PyTypeObject *log_type;     /* sseload._sse.EventLog: feed takes only these */
    /* EventLog.feed(buf[:len], t_ns) without the objects: NULL with the exception set (an
     * SSEProtocolError: none of the read's events kept), or a new reference: None when there is
     * nothing to act on, else the list of events to act on (empty when only `complete` changed). */
    PyObject *(*feed)(PyObject *log, const char *buf, Py_ssize_t len, int64_t t_ns);
} sse_feed_api;

#endif
