/* The compiled twin of sseload/protocol/framing.py (BodyFraming): an HTTP/1.1 body's framing
 * taken off as the body arrives, so that a read goes from the socket to events in one call. */
#include "_sse.h"

enum { F_SIZE, F_DATA, F_DATA_END, F_TRAILER, F_COMPLETE };
#define MAX_FRAMING_LINE 16384  /* as sseload.protocol.framing.MAX_FRAMING_LINE */

void sse_framing_init(Framing *f, int chunked, long long length) {
    f->kind = chunked ? FRAMING_CHUNKED : length >= 0 ? FRAMING_LENGTH : FRAMING_NONE;
    f->state = F_SIZE;
    f->left = chunked ? 0 : length;
    f->line.len = 0;
    f->complete = !chunked && length == 0;
}

void sse_framing_free(Framing *f) {
    PyMem_Free(f->line.p);
    PyMem_Free(f->segs.p);
}

static int seg_push(Framing *f, Py_ssize_t off, Py_ssize_t len) {
    return ints_push(&f->segs, off) < 0 ? -1 : ints_push(&f->segs, len);
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
static int framing_line(Framing *f, const char *l, Py_ssize_t m) {
    if (m && l[m - 1] == '\r')
        m--;
    switch (f->state) {
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
        f->left = size;
        f->state = size ? F_DATA : F_TRAILER;
        return 0;
    }
    case F_DATA_END:
        if (m)
            return framing_error("chunk data longer than its size");
        f->state = F_SIZE;
        return 0;
    default:  /* F_TRAILER: an empty line ends the trailers and the body */
        if (!m)
            f->state = F_COMPLETE;
        return 0;
    }
}

/* As BodyFraming.feed, with the content as segments of the read instead of bytes objects. */
int sse_deframe(Framing *f, const char *s, Py_ssize_t n) {
    f->segs.len = 0;
    if (f->complete)
        return 0;
    if (f->kind == FRAMING_LENGTH) {
        Py_ssize_t take = n < f->left ? n : (Py_ssize_t)f->left;
        f->left -= take;
        f->complete = f->left == 0;
        return seg_push(f, 0, take);
    }
    Py_ssize_t i = 0;
    while (i < n && f->state != F_COMPLETE) {
        if (f->state == F_DATA) {
            Py_ssize_t take = n - i < f->left ? n - i : (Py_ssize_t)f->left;
            if (seg_push(f, i, take) < 0)
                return -1;
            i += take;
            f->left -= take;
            if (f->left == 0)
                f->state = F_DATA_END;
            continue;
        }
        const char *lf = memchr(s + i, '\n', n - i);
        if (!lf) {
            if (buf_put(&f->line, s + i, n - i) < 0)
                return -1;
            if (f->line.len > MAX_FRAMING_LINE)
                return framing_error("a framing line over 16384 bytes");
            break;
        }
        Py_ssize_t j = lf - s;
        const char *l = s + i;
        Py_ssize_t m = j - i;
        if (f->line.len) {
            if (buf_put(&f->line, s + i, j - i) < 0)
                return -1;
            l = f->line.p;
            m = f->line.len;
        }
        i = j + 1;
        if (m > MAX_FRAMING_LINE)
            return framing_error("a framing line over 16384 bytes");
        int rc = framing_line(f, l, m);
        f->line.len = 0;
        if (rc < 0)
            return -1;
    }
    f->complete = f->state == F_COMPLETE;
    return 0;
}
