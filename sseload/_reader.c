/* sseload._reader: the read side of every open stream, on one OS thread that never takes the GIL.
 *
 * A native thread waits in epoll_wait, reads each readable socket with recvmsg() into memory of
 * its own and times each read by the kernel's receive timestamp (SO_TIMESTAMPNS, moved to
 * CLOCK_MONOTONIC, the clock of time.perf_counter_ns), or by when recvmsg returned where the
 * kernel gives none. It reads in windows (window_ns) at a raised priority where permitted, and
 * samples its own wake-up lag. Python drains the reads in batches (dispatch), feeding routed
 * body reads straight into the compiled event log (_sse_api.h); a TLS stream's body reads are
 * decrypted there first, on Python's own OpenSSL objects (TLSRoute). No parsing happens here.
 * Memory is bounded: past max_bytes of undrained reads the thread waits for a drain.
 *
 * Why each of these choices, with what they were measured against: docs/measurement.md
 * ("Timing reads: the native reader"). Python's view of this module: _reader.pyi.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "_sse_api.h"

/* TLS streams: decrypted in dispatch with the OpenSSL that Python's ssl module uses (see
 * TLSRoute below), found at run time, so building sseload needs no OpenSSL headers. */
#define TLS_SCRATCH (RECV_BYTES + 32768) /* a read's records, and a record it completed from the last */

#define RECV_BYTES 65536
#define MAX_EVENTS 512
#define LAG_INTERVAL_NS 50000000LL  /* the thread's own wake-up lag, sampled every 50 ms */
#define LAG_SAMPLES_MAX 65536       /* kept until taken (Python takes them every second) */
#define MAX_STAMP_AGE_NS 10000000000LL /* a kernel time older than this at read: a clock step, not data */
/* The wall clock (which kernel stamps are on) moved against the monotonic one by more than this
 * since the last wake-up, or during this one: a step. Stamps taken on one side of it and mapped
 * with the offset read on the other would be off by the step, so that wake-up's reads are timed
 * as they returned instead. (A host may step the wall clock; docs/measurement.md.) */
#define CLOCK_STEP_NS 100000LL

typedef struct {
    int64_t token;
    int64_t t_ns;
    int64_t t_ret;  /* when the read returned: its time if the wall clock stepped during the wake-up */
    size_t off;
    size_t len;
    int err;   /* 0, or the errno of a failed recv; len 0 and err 0: EOF */
} entry_t;

typedef struct {
    entry_t *entries;
    size_t n, cap;
    char *bytes;
    size_t used, size;
} batch_t;

typedef struct {
    PyObject_HEAD
    int epfd;
    int evfd;
    pthread_t thread;
    int started;
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t room;
    int64_t *tokens;       /* by fd; -1 when not registered */
    int64_t *last_t;       /* by fd: the time of its last read (or of add()): no read is earlier */
    size_t ntokens;
    int64_t prev_offset;   /* realtime - monotonic at the last wake-up that read sockets */
    int have_offset;
    int64_t inject_step_ns;  /* tests: a step the next wake-up that reads sockets sees */
    uint64_t stepped;      /* wake-ups whose reads were timed as they returned: the wall clock stepped */
    batch_t fill;          /* written by the thread under mu */
    batch_t spare;         /* handed to Python by drain() */
    int notified;
    int taken;             /* a batch is out with drain()/dispatch(): no nested take */
    size_t max_bytes;
    uint64_t reads;
    uint64_t stamped;      /* reads timed by the kernel's receive timestamp */
    uint64_t wakeups;
    int64_t window_ns;     /* after a wake-up that read sockets, sleep until this much after it */
    int kernel_timestamps;
    int stampfd;           /* a socket asking for timestamps, held open: see Reader_init */
    int want_nice;         /* the priority the thread asks for */
    int nice;              /* the priority it runs at */
    int tfd;               /* timerfd in the same epoll set: how late does this thread wake? */
    int64_t next_tick_ns;
    int64_t *lags;         /* ns late, per tick, until take_lags() */
    size_t nlags;
    uint64_t tls_reads;    /* routed TLS reads decrypted in dispatch (TLSRoute) */
    char *scratch;         /* their plaintext, while dispatch runs */
    size_t scratch_cap;
} Reader;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* recvmsg into buf; *t_ns is the arrival time (see the top of this file), in CLOCK_MONOTONIC. */
static ssize_t read_stamped(Reader *r, int fd, char *buf, int64_t real_minus_mono, int use_stamps,
                            int64_t *t_ns, int64_t *t_ret) {
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = RECV_BYTES};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t got = recvmsg(fd, &msg, MSG_DONTWAIT);
    int saved = errno;
    int64_t t = now_ns();
    *t_ns = *t_ret = t;
    if (got > 0 && r->kernel_timestamps && use_stamps) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof ts);
                int64_t k = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - real_minus_mono;
                if (k > t) k = t; /* the two clocks were read a few ns apart */
                if (k > t - MAX_STAMP_AGE_NS) {
                    *t_ns = k;
                    r->stamped++;
                }
            }
        }
    }
    errno = saved;
    return got;
}

static int batch_reserve(batch_t *b, size_t bytes) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        entry_t *e = realloc(b->entries, cap * sizeof(entry_t));
        if (!e) return -1;
        b->entries = e;
        b->cap = cap;
    }
    if (b->size - b->used < bytes) {
        size_t size = b->size ? b->size : (1 << 20);
        while (size - b->used < bytes) size *= 2;
        char *p = realloc(b->bytes, size);
        if (!p) return -1;
        b->bytes = p;
        b->size = size;
    }
    return 0;
}

static void unregister_locked(Reader *r, int fd) {
    if (fd >= 0 && (size_t)fd < r->ntokens && r->tokens[fd] >= 0) {
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, fd, NULL);
        r->tokens[fd] = -1;
    }
}

/* Run this thread at nice `want`, or as close to it as the process may; return what it got. */
static int set_priority(int want) {
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int now = getpriority(PRIO_PROCESS, tid);
    if (errno) return 0;
    if (want == now || setpriority(PRIO_PROCESS, tid, want) == 0) return want;
    struct rlimit lim; /* unprivileged: RLIMIT_NICE allows down to 20 - rlim_cur */
    if (getrlimit(RLIMIT_NICE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
        int floor = 20 - (int)lim.rlim_cur;
        if (floor < now && setpriority(PRIO_PROCESS, tid, floor) == 0) return floor;
    }
    return now;
}

static void *reader_run(void *arg) {
    Reader *r = (Reader *)arg;
    struct epoll_event events[MAX_EVENTS];
    int nice = set_priority(r->want_nice);
    pthread_mutex_lock(&r->mu);
    r->nice = nice;
    pthread_mutex_unlock(&r->mu);
    for (;;) {
        int n = epoll_wait(r->epfd, events, MAX_EVENTS, 100);
        int64_t woke = now_ns();
        int64_t real_minus_mono = realtime_ns() - woke;
        int read_sockets = 0;
        pthread_mutex_lock(&r->mu);
        if (r->stop) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        r->wakeups++;
        size_t before = r->fill.n;
        int sockets_ready = 0;
        for (int i = 0; i < n; i++)
            sockets_ready |= events[i].data.fd != r->tfd;
        int use_stamps = 1;
        if (sockets_ready) {
            real_minus_mono += r->inject_step_ns;
            r->inject_step_ns = 0;
            int64_t moved = real_minus_mono - r->prev_offset;
            if (r->have_offset && (moved > CLOCK_STEP_NS || moved < -CLOCK_STEP_NS))
                use_stamps = 0;
            r->prev_offset = real_minus_mono;
            r->have_offset = 1;
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == r->tfd) {
                /* Woken as late as any socket read would have been: that is the error the
                 * timestamps carry. An expiry missed altogether counts from the first one. */
                uint64_t expired = 0;
                int64_t t = now_ns();
                if (read(r->tfd, &expired, sizeof expired) == sizeof expired && expired > 0) {
                    if (r->nlags < LAG_SAMPLES_MAX)
                        r->lags[r->nlags++] = t - r->next_tick_ns;
                    r->next_tick_ns += (int64_t)expired * LAG_INTERVAL_NS;
                }
                continue;
            }
            /* Edge-triggered: read until the socket is drained. A read shorter than the buffer
             * emptied the receive queue (TCP copies while segments are queued), and any byte
             * arriving after it is a new edge; a full buffer is read again. A peer's close or an
             * error already reported with this edge comes after the bytes: read on until it. */
            int ended = (events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
            for (;;) {
                while (r->fill.used > r->max_bytes && !r->stop)
                    pthread_cond_wait(&r->room, &r->mu);
                if (r->stop) break;
                if ((size_t)fd >= r->ntokens || r->tokens[fd] < 0)
                    break; /* removed after epoll_wait reported it */
                if (batch_reserve(&r->fill, RECV_BYTES) < 0) { /* out of memory: wait, never drop the edge */
                    pthread_mutex_unlock(&r->mu);
                    struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
                    nanosleep(&ms, NULL);
                    pthread_mutex_lock(&r->mu);
                    continue;
                }
                batch_t *b = &r->fill;
                int64_t t, t_ret;
                ssize_t got = read_stamped(r, fd, b->bytes + b->used, real_minus_mono, use_stamps, &t, &t_ret);
                read_sockets = 1;
                if (got < 0 && errno == EINTR)
                    continue;
                if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                if (t < r->last_t[fd])
                    t = r->last_t[fd]; /* never earlier than the stream's previous read, or its start */
                if (t_ret < t)
                    t_ret = t;
                r->last_t[fd] = t;
                entry_t *e = &b->entries[b->n++];
                e->token = r->tokens[fd];
                e->t_ns = t;
                e->t_ret = t_ret;
                e->off = b->used;
                e->len = got > 0 ? (size_t)got : 0;
                e->err = got < 0 ? errno : 0;
                r->reads++;
                if (got <= 0) {
                    unregister_locked(r, fd); /* EOF or error: reported once, then out of the poll set */
                    break;
                }
                b->used += (size_t)got;
                if ((size_t)got < RECV_BYTES && !ended)
                    break;
            }
            if (r->stop) break;
        }
        if (sockets_ready && use_stamps && r->fill.n > before) {
            /* A step during this wake-up: its stamped reads straddle it. Time them as they returned. */
            int64_t after = realtime_ns() - now_ns();
            if (after - real_minus_mono > CLOCK_STEP_NS || real_minus_mono - after > CLOCK_STEP_NS) {
                use_stamps = 0;
                for (size_t i = before; i < r->fill.n; i++)
                    r->fill.entries[i].t_ns = r->fill.entries[i].t_ret;
            }
        }
        if (!use_stamps && r->fill.n > before)
            r->stepped++;
        if (r->fill.n > before && !r->notified) {
            uint64_t one = 1;
            ssize_t w = write(r->evfd, &one, sizeof one);
            (void)w;
            r->notified = 1;
        }
        pthread_mutex_unlock(&r->mu);
        if (read_sockets && r->window_ns > 0) {
            int64_t until = woke + r->window_ns;
            struct timespec ts = {.tv_sec = until / 1000000000LL, .tv_nsec = until % 1000000000LL};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
            }
        }
    }
    return NULL;
}

static int Reader_init(Reader *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"max_bytes", "window_ns", "kernel_timestamps", "nice", NULL};
    Py_ssize_t max_bytes = 256 << 20;
    long long window_ns = 0;
    int kernel_timestamps = 1;
    int want_nice = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|nLpi", kwlist, &max_bytes, &window_ns, &kernel_timestamps,
                                     &want_nice))
        return -1;
    if (max_bytes <= 0 || window_ns < 0 || window_ns >= 1000000000LL || want_nice < -20 || want_nice > 19) {
        PyErr_SetString(PyExc_ValueError,
                        "max_bytes must be positive, window_ns in [0, 1 s) and nice in [-20, 19]");
        return -1;
    }
    self->want_nice = want_nice;
    self->nice = getpriority(PRIO_PROCESS, 0); /* until the thread has asked for want_nice */
    self->max_bytes = (size_t)max_bytes;
    self->window_ns = window_ns;
    self->kernel_timestamps = kernel_timestamps;
    self->stampfd = -1;
    if (kernel_timestamps) {
        /* The kernel stamps arriving packets only while some socket wants it, and switches
         * that on asynchronously: one socket held for the reader's life keeps it on between
         * streams, so a fresh connection's first bytes are stamped too. */
        int on = 1;
        self->stampfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (self->stampfd >= 0)
            setsockopt(self->stampfd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    }
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->evfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->lags = malloc(LAG_SAMPLES_MAX * sizeof(int64_t));
    self->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (!self->lags || self->tfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    spec.it_interval.tv_nsec = LAG_INTERVAL_NS;
    spec.it_value.tv_nsec = LAG_INTERVAL_NS;
    self->next_tick_ns = now_ns() + LAG_INTERVAL_NS;
    struct epoll_event tev;
    memset(&tev, 0, sizeof tev);
    tev.events = EPOLLIN;
    tev.data.fd = self->tfd;
    if (timerfd_settime(self->tfd, 0, &spec, NULL) < 0 || epoll_ctl(self->epfd, EPOLL_CTL_ADD, self->tfd, &tev) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->room, NULL);
    if (pthread_create(&self->thread, NULL, reader_run, self) != 0) {
        PyErr_SetString(PyExc_OSError, "could not start the reader thread");
        return -1;
    }
    self->started = 1;
    return 0;
}

static void reader_stop(Reader *self) {
    if (!self->started) return;
    pthread_mutex_lock(&self->mu);
    self->stop = 1;
    pthread_cond_broadcast(&self->room);
    pthread_mutex_unlock(&self->mu);
    Py_BEGIN_ALLOW_THREADS
    pthread_join(self->thread, NULL);
    Py_END_ALLOW_THREADS
    self->started = 0;
}

static void Reader_dealloc(Reader *self) {
    reader_stop(self);
    if (self->epfd > 0) close(self->epfd);
    if (self->evfd > 0) close(self->evfd);
    if (self->tfd > 0) close(self->tfd);
    if (self->stampfd > 0) close(self->stampfd);
    free(self->lags);
    free(self->tokens);
    free(self->last_t);
    free(self->fill.entries);
    free(self->fill.bytes);
    free(self->spare.entries);
    free(self->spare.bytes);
    free(self->scratch);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Reader_add(Reader *self, PyObject *args) {
    int fd;
    long long token, not_before_ns = 0;
    if (!PyArg_ParseTuple(args, "iL|L", &fd, &token, &not_before_ns))
        return NULL;
    if (fd < 0 || token < 0) {
        PyErr_SetString(PyExc_ValueError, "fd and token must not be negative");
        return NULL;
    }
    int rc, err = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->mu);
    if ((size_t)fd >= self->ntokens) {
        size_t n = self->ntokens ? self->ntokens : 1024;
        while (n <= (size_t)fd) n *= 2;
        int64_t *t = realloc(self->tokens, n * sizeof(int64_t));
        if (t)
            self->tokens = t;
        int64_t *last = t ? realloc(self->last_t, n * sizeof(int64_t)) : NULL;
        if (last) {
            self->last_t = last;
            for (size_t i = self->ntokens; i < n; i++) {
                t[i] = -1;
                last[i] = 0;
            }
            self->ntokens = n;
        }
    }
    if ((size_t)fd < self->ntokens) {
        if (self->kernel_timestamps) { /* best effort: without it, reads are timed as they return */
            int on = 1;
            setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
        }
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET; /* one report per arrival, not per epoll_wait */
        ev.data.fd = fd;
        self->tokens[fd] = token;
        self->last_t[fd] = not_before_ns; /* the request's send: no read of its answer is earlier */
        rc = epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev);
        if (rc < 0 && errno == EEXIST)
            rc = epoll_ctl(self->epfd, EPOLL_CTL_MOD, fd, &ev);
        if (rc < 0) {
            err = errno;
            self->tokens[fd] = -1;
        }
    } else {
        rc = -1;
        err = ENOMEM;
    }
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *Reader_remove(Reader *self, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->mu);
    unregister_locked(self, fd);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* Take every read since the last take: the thread fills the other batch meanwhile. */
static batch_t take_batch(Reader *self) {
    uint64_t count;
    ssize_t rd = read(self->evfd, &count, sizeof count); /* clear the wake-up; EAGAIN is fine */
    (void)rd;
    batch_t full;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->mu);
    full = self->fill;
    self->fill = self->spare;
    self->fill.n = 0;
    self->fill.used = 0;
    self->notified = 0;
    pthread_cond_broadcast(&self->room);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS
    return full;
}

static void give_back(Reader *self, batch_t full) {
    full.n = 0;
    full.used = 0;
    self->spare = full; /* its memory is reused by the next swap */
    self->taken = 0;
}

/* Every read since the last drain, in order: a list of (token, t_ns, data, err), where data
 * is bytes (b"" at EOF) and err an errno (0 when the read succeeded or hit EOF). */
static PyObject *Reader_drain(Reader *self, PyObject *Py_UNUSED(ignored)) {
    if (self->taken) {
        PyErr_SetString(PyExc_RuntimeError, "drain() or dispatch() called from inside dispatch()");
        return NULL;
    }
    self->taken = 1;
    batch_t full = take_batch(self);
    PyObject *out = PyList_New((Py_ssize_t)full.n);
    if (out) {
        for (size_t i = 0; i < full.n; i++) {
            entry_t *e = &full.entries[i];
            PyObject *item = Py_BuildValue("(LLy#i)", (long long)e->token, (long long)e->t_ns,
                                           full.bytes + e->off, (Py_ssize_t)e->len, e->err);
            if (!item) {
                Py_CLEAR(out);
                break;
            }
            PyList_SET_ITEM(out, (Py_ssize_t)i, item);
        }
    }
    give_back(self, full);
    return out;
}

/* callback(t_ns, data, err) for one read */
static PyObject *call_on_read(PyObject *cb, const entry_t *e, const char *bytes) {
    PyObject *args[3];
    args[0] = PyLong_FromLongLong(e->t_ns);
    args[1] = PyBytes_FromStringAndSize(bytes + e->off, (Py_ssize_t)e->len);
    args[2] = PyLong_FromLong(e->err);
    PyObject *res = NULL;
    if (args[0] && args[1] && args[2])
        res = PyObject_Vectorcall(cb, args, 3, NULL);
    Py_XDECREF(args[0]);
    Py_XDECREF(args[1]);
    Py_XDECREF(args[2]);
    return res;
}

/* The capsule of sseload._sse (see _sse_api.h), loaded at the first routed read. */
static const sse_feed_api *feed_api;
static int feed_api_tried;

static const sse_feed_api *get_feed_api(void) {
    if (!feed_api_tried) {
        feed_api_tried = 1;
        feed_api = PyCapsule_Import(SSE_FEED_API_NAME, 0);
        if (!feed_api || feed_api->version != SSE_FEED_API_VERSION) {
            PyErr_Clear();  /* not built, or another version: routed reads go to on_read */
            feed_api = NULL;
        }
    }
    return feed_api;
}

/* --- TLS streams: decrypted here, not in Python ---
 * A TLS stream's socket is a plain one: the thread reads and times its records like any other
 * bytes. Python's ssl module decrypts them through memory BIOs (client._TLS) at several Python
 * calls and copies per read. Once the head is read, a TLSRoute does the same OpenSSL calls on the
 * same objects in dispatch: BIO_write the read into the connection's incoming BIO, SSL_read until
 * it wants more, feed the plaintext to the event log. It uses the SSL* and BIO* inside Python's
 * _ssl objects, whose leading fields are the same in every CPython since 3.7 (PySSLSocket:
 * Socket, ssl; PySSLMemoryBIO: bio), and checks them: the connection's SSL_get_rbio and
 * SSL_get_wbio must be those two BIOs, or the route is refused and Python decrypts as before.
 * The functions are looked up in the library _ssl was loaded with (dlopen of its file with
 * RTLD_NOLOAD, whose dependencies dlsym searches), so both work on one OpenSSL and building
 * sseload needs no OpenSSL headers. Only dispatch, holding the GIL, touches the objects while a
 * stream's reads are routed; Python's own calls on them (the next request's encryption, the
 * session kept at close) come after them. */
typedef struct {
    int (*SSL_read)(void *, void *, int);
    int (*SSL_pending)(const void *);
    int (*SSL_get_error)(const void *, int);
    void *(*SSL_get_rbio)(const void *);
    void *(*SSL_get_wbio)(const void *);
    int (*BIO_write)(void *, const void *, int);
    int (*BIO_read)(void *, void *, int);
    uint64_t (*BIO_number_read)(void *);
    uint64_t (*BIO_number_written)(void *);
    void (*ERR_clear_error)(void);
    unsigned long (*ERR_get_error)(void);
    const char *(*ERR_reason_error_string)(unsigned long);
} ossl_api;

#define OSSL_ERROR_WANT_READ 2 /* these numbers are OpenSSL's ABI since 1.0 */
#define OSSL_ERROR_ZERO_RETURN 6

static ossl_api ossl;
static int ossl_state; /* 0: not looked up yet, 1: found, -1: missing */

static int ossl_load(const char *library) {
    if (ossl_state)
        return ossl_state;
    void *h = library ? dlopen(library, RTLD_NOW | RTLD_NOLOAD) : RTLD_DEFAULT; /* never closed */
    int ok = h != NULL;
#define OSSL_LOOK(name)                           \
    if (ok) {                                     \
        *(void **)&ossl.name = dlsym(h, #name);   \
        ok = ossl.name != NULL;                   \
    }
    OSSL_LOOK(SSL_read)
    OSSL_LOOK(SSL_pending)
    OSSL_LOOK(SSL_get_error)
    OSSL_LOOK(SSL_get_rbio)
    OSSL_LOOK(SSL_get_wbio)
    OSSL_LOOK(BIO_write)
    OSSL_LOOK(BIO_read)
    OSSL_LOOK(BIO_number_read)
    OSSL_LOOK(BIO_number_written)
    OSSL_LOOK(ERR_clear_error)
    OSSL_LOOK(ERR_get_error)
    OSSL_LOOK(ERR_reason_error_string)
#undef OSSL_LOOK
    ossl_state = ok ? 1 : -1;
    return ossl_state;
}

typedef struct { /* the leading fields of CPython's _ssl objects */
    PyObject_HEAD
    PyObject *socket;
    void *ssl;
} py_sslsocket_head;

typedef struct {
    PyObject_HEAD
    void *bio;
} py_memorybio_head;

typedef struct {
    PyObject_HEAD
    PyObject *sslobj, *incoming, *outgoing; /* held: the SSL and BIOs below live in them */
    void *ssl, *rbio, *wbio;
    int fd;
    uint64_t reads;
    uint64_t wbio_seen; /* bytes OpenSSL had written to the outgoing BIO when last looked at */
} TLSRoute;

static PyTypeObject TLSRouteType;

static int TLSRoute_init(TLSRoute *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"sslobj", "incoming", "outgoing", "fd", "library", NULL};
    PyObject *sslobj, *in, *out;
    int fd;
    const char *library = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOiz", kwlist, &sslobj, &in, &out, &fd, &library))
        return -1;
    if (self->sslobj) {
        PyErr_SetString(PyExc_RuntimeError, "a TLSRoute is made once");
        return -1;
    }
    if (strcmp(Py_TYPE(sslobj)->tp_name, "_ssl._SSLSocket") || strcmp(Py_TYPE(in)->tp_name, "_ssl.MemoryBIO") ||
        strcmp(Py_TYPE(out)->tp_name, "_ssl.MemoryBIO")) {
        PyErr_SetString(PyExc_TypeError, "TLSRoute takes an SSLObject's _sslobj and its two MemoryBIOs");
        return -1;
    }
    if (ossl_load(library) < 0) {
        PyErr_Format(PyExc_OSError, "OpenSSL's functions were not found beside %s", library ? library : "python");
        return -1;
    }
    void *ssl = ((py_sslsocket_head *)sslobj)->ssl;
    void *rbio = ((py_memorybio_head *)in)->bio, *wbio = ((py_memorybio_head *)out)->bio;
    if (!ssl || !rbio || !wbio || ossl.SSL_get_rbio(ssl) != rbio || ossl.SSL_get_wbio(ssl) != wbio) {
        PyErr_SetString(PyExc_ValueError, "this Python's ssl objects are not laid out as TLSRoute expects");
        return -1;
    }
    Py_INCREF(sslobj);
    Py_INCREF(in);
    Py_INCREF(out);
    self->sslobj = sslobj;
    self->incoming = in;
    self->outgoing = out;
    self->ssl = ssl;
    self->rbio = rbio;
    self->wbio = wbio;
    self->fd = fd;
    self->wbio_seen = ossl.BIO_number_written(wbio); /* Python read out what it wrote (the request) */
    return 0;
}

static void TLSRoute_dealloc(TLSRoute *self) {
    Py_XDECREF(self->sslobj);
    Py_XDECREF(self->incoming);
    Py_XDECREF(self->outgoing);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ssl.SSLError for a failed SSL_read, with .reason as Python's ssl gives it (e.g. BAD_RECORD_MAC). */
static void set_tls_error(int kind, unsigned long code) {
    char reason[128] = "";
    const char *text = code ? ossl.ERR_reason_error_string(code) : NULL;
    if (text) {
        size_t i = 0;
        for (; text[i] && i < sizeof reason - 1; i++)
            reason[i] = text[i] == ' ' ? '_' : (char)(text[i] >= 'a' && text[i] <= 'z' ? text[i] - 32 : text[i]);
        reason[i] = 0;
    } else {
        snprintf(reason, sizeof reason, "SSL_ERROR_%d", kind);
    }
    PyObject *mod = PyImport_ImportModule("ssl");
    PyObject *cls = mod ? PyObject_GetAttrString(mod, "SSLError") : NULL;
    Py_XDECREF(mod);
    if (!cls)
        return;
    PyObject *exc = PyObject_CallFunction(cls, "is", kind, text ? text : reason);
    Py_DECREF(cls);
    if (!exc)
        return;
    PyObject *r = PyUnicode_FromString(reason), *lib = PyUnicode_FromString("SSL");
    if (r && lib && PyObject_SetAttrString(exc, "reason", r) == 0 && PyObject_SetAttrString(exc, "library", lib) == 0)
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_XDECREF(r);
    Py_XDECREF(lib);
    Py_DECREF(exc);
}

/* Decrypt one read: its plaintext into *buf (grown as needed, *cap its size) and its length, or
 * -1 with a Python exception set. Nothing decrypted stays in the SSL object: it reads until
 * OpenSSL wants more bytes (or close_notify came), as client._TLS.decrypt does. */
static Py_ssize_t tls_decrypt(TLSRoute *t, const char *data, size_t len, char **buf, size_t *cap) {
    ossl.ERR_clear_error();
    if (len > 0 && ossl.BIO_write(t->rbio, data, (int)len) != (int)len) {
        PyErr_NoMemory();
        return -1;
    }
    t->reads++;
    size_t got = 0;
    for (;;) {
        if (*cap - got < 16384 + 256) { /* room for a whole record */
            size_t size = *cap ? *cap * 2 : TLS_SCRATCH;
            char *p = realloc(*buf, size);
            if (!p) {
                PyErr_NoMemory();
                return -1;
            }
            *buf = p;
            *cap = size;
        }
        int n = ossl.SSL_read(t->ssl, *buf + got, (int)(*cap - got > INT32_MAX ? INT32_MAX : *cap - got));
        if (n > 0) {
            got += (size_t)n;
            /* nothing left to decrypt (the usual read: one record): the SSL_read that would say so
             * costs as much as the one that decrypted (OpenSSL 3's error queue and record layer).
             * A memory BIO's pending bytes are those written minus those read (no BIO_ctrl call). */
            if (ossl.SSL_pending(t->ssl) == 0 &&
                ossl.BIO_number_written(t->rbio) == ossl.BIO_number_read(t->rbio))
                break;
            continue;
        }
        int kind = ossl.SSL_get_error(t->ssl, n);
        if (kind == OSSL_ERROR_WANT_READ || kind == OSSL_ERROR_ZERO_RETURN)
            break; /* ZERO_RETURN: close_notify, the response ends with the connection */
        set_tls_error(kind, ossl.ERR_get_error());
        ossl.ERR_clear_error();
        return -1;
    }
    /* OpenSSL may have an answer to send (a TLS 1.2 renegotiation's hello, an alert; a TLS 1.3
     * KeyUpdate's own goes with the next write): tiny, sent without waiting, as
     * client._TLS.decrypt does (the kernel's send buffer is all but empty while a stream reads) */
    uint64_t written = ossl.BIO_number_written(t->wbio);
    if (written != t->wbio_seen) {
        t->wbio_seen = written;
        char out[4096];
        int n;
        while ((n = ossl.BIO_read(t->wbio, out, sizeof out)) > 0)
            if (send(t->fd, out, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                break;
    }
    return (Py_ssize_t)got;
}

/* TLSRoute.decrypt(data) -> bytes: what dispatch does with a routed read, for tests */
static PyObject *TLSRoute_decrypt(TLSRoute *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    Py_ssize_t n = tls_decrypt(self, view.buf, (size_t)view.len, &buf, &cap);
    PyBuffer_Release(&view);
    PyObject *out = n < 0 ? NULL : PyBytes_FromStringAndSize(buf, n);
    free(buf);
    return out;
}

static PyObject *TLSRoute_get_reads(TLSRoute *self, void *closure) {
    return PyLong_FromUnsignedLongLong(self->reads);
}

static PyMethodDef TLSRoute_methods[] = {
    {"decrypt", (PyCFunction)TLSRoute_decrypt, METH_O,
     "decrypt(data) -> bytes: decrypt one read as dispatch does for a routed TLS stream."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef TLSRoute_getset[] = {
    {"reads", (getter)TLSRoute_get_reads, NULL, "reads decrypted", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TLSRouteType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sseload._reader.TLSRoute",
    .tp_doc = "TLSRoute(sslobj, incoming, outgoing, fd, library): decrypt a routed TLS stream's reads in "
              "dispatch, on the objects of Python's ssl module (an SSLObject's _sslobj and its MemoryBIOs).",
    .tp_basicsize = sizeof(TLSRoute),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)TLSRoute_init,
    .tp_dealloc = (destructor)TLSRoute_dealloc,
    .tp_methods = TLSRoute_methods,
    .tp_getset = TLSRoute_getset,
};

/* A read of a routed stream, callbacks[token] = (log, on_read, on_fed[, tls]): its bytes (a TLS
 * stream's: decrypted by its TLSRoute) go straight into the stream's compiled event log;
 * on_fed(t_ns, events) hears of it only when the read completed something to act on (a list of
 * events), or on_fed(t_ns, error) when the log refused it or TLS failed. EOF and errors, and a
 * log that is not the compiled one, go to on_read. */
static PyObject *call_routed(Reader *self, PyObject *route, const entry_t *e, const char *bytes) {
    PyObject *log = PyTuple_GET_ITEM(route, 0);
    const sse_feed_api *api = e->err == 0 && e->len > 0 ? get_feed_api() : NULL;
    if (!api || Py_TYPE(log) != api->log_type)
        return call_on_read(PyTuple_GET_ITEM(route, 1), e, bytes);
    const char *data = bytes + e->off;
    Py_ssize_t len = (Py_ssize_t)e->len;
    PyObject *what = NULL;
    if (PyTuple_GET_SIZE(route) == 4) {
        len = tls_decrypt((TLSRoute *)PyTuple_GET_ITEM(route, 3), data, e->len, &self->scratch, &self->scratch_cap);
        self->tls_reads++;
        data = self->scratch;
        if (len == 0)
            Py_RETURN_NONE; /* a part of a record, or a session ticket: nothing for the log */
    }
    if (len > 0)
        what = api->feed(log, data, len, e->t_ns);
    if (what == Py_None)
        return what;  /* the common read: recorded, nothing to act on */
    if (!what) {
        PyObject *type, *tb;
        PyErr_Fetch(&type, &what, &tb);
        PyErr_NormalizeException(&type, &what, &tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        if (!what) {
            PyErr_SetString(PyExc_SystemError, "the event log refused a read without saying why");
            return NULL;
        }
    }
    PyObject *args[2] = {PyLong_FromLongLong(e->t_ns), what};
    PyObject *res = args[0] ? PyObject_Vectorcall(PyTuple_GET_ITEM(route, 2), args, 2, NULL) : NULL;
    Py_XDECREF(args[0]);
    Py_DECREF(what);
    return res;
}

/* (log, on_read, on_fed) or (log, on_read, on_fed, TLSRoute) */
static int is_route(PyObject *cb) {
    if (!PyTuple_CheckExact(cb))
        return 0;
    Py_ssize_t n = PyTuple_GET_SIZE(cb);
    return n == 3 || (n == 4 && Py_TYPE(PyTuple_GET_ITEM(cb, 3)) == &TLSRouteType);
}

/* dispatch(callbacks): for every read since the last drain, in order, call
 * callbacks[token](t_ns, data, err); reads of a token no longer in the dict are dropped (the
 * stream ended). A value (log, on_read, on_fed) routes a stream's reads into its event log
 * (call_routed). The loop of drain() without its tuples, list and lookups in Python. An
 * exception from a callback does not stop the others: the first is raised once all ran. */
static PyObject *Reader_dispatch(Reader *self, PyObject *callbacks) {
    if (!PyDict_Check(callbacks)) {
        PyErr_SetString(PyExc_TypeError, "dispatch() takes a dict of token -> callback");
        return NULL;
    }
    if (self->taken) {
        PyErr_SetString(PyExc_RuntimeError, "drain() or dispatch() called from inside dispatch()");
        return NULL;
    }
    self->taken = 1;
    batch_t full = take_batch(self);
    PyObject *exc_type = NULL, *exc_value = NULL, *exc_tb = NULL;
    Py_ssize_t called = 0;
    for (size_t i = 0; i < full.n; i++) {
        entry_t *e = &full.entries[i];
        PyObject *key = PyLong_FromLongLong(e->token);
        if (!key) break;
        PyObject *cb = PyDict_GetItemWithError(callbacks, key);
        Py_DECREF(key);
        if (!cb) {
            if (PyErr_Occurred()) break;
            continue;
        }
        Py_INCREF(cb); /* the callback may remove itself from the dict */
        PyObject *res = is_route(cb) ? call_routed(self, cb, e, full.bytes) : call_on_read(cb, e, full.bytes);
        Py_DECREF(cb);
        called++;
        if (res) {
            Py_DECREF(res);
        } else if (exc_type == NULL) {
            PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        } else {
            PyErr_Clear();
        }
    }
    give_back(self, full);
    if (exc_type != NULL) {
        PyErr_Restore(exc_type, exc_value, exc_tb);
        return NULL;
    }
    if (PyErr_Occurred()) return NULL;
    return PyLong_FromSsize_t(called);
}

static PyObject *Reader_fileno(Reader *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromLong(self->evfd);
}

static PyObject *Reader_stats(Reader *self, PyObject *Py_UNUSED(ignored)) {
    uint64_t reads, stamped, wakeups, stepped, tls_reads = self->tls_reads; /* dispatch's, under the GIL */
    int nice;
    pthread_mutex_lock(&self->mu);
    reads = self->reads;
    stamped = self->stamped;
    wakeups = self->wakeups;
    stepped = self->stepped;
    nice = self->nice;
    pthread_mutex_unlock(&self->mu);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:i,s:K}", "reads", (unsigned long long)reads, "stamped",
                         (unsigned long long)stamped, "wakeups", (unsigned long long)wakeups, "stepped",
                         (unsigned long long)stepped, "nice", nice, "tls_reads", (unsigned long long)tls_reads);
}

static PyObject *Reader_inject_clock_step(Reader *self, PyObject *arg) {
    long long step = PyLong_AsLongLong(arg);
    if (step == -1 && PyErr_Occurred())
        return NULL;
    pthread_mutex_lock(&self->mu);
    self->inject_step_ns = step;
    pthread_mutex_unlock(&self->mu);
    Py_RETURN_NONE;
}

/* The reader thread's wake-up lags (int64 ns, native order) since the last call, as bytes. */
static PyObject *Reader_take_lags(Reader *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *out;
    pthread_mutex_lock(&self->mu);
    out = PyBytes_FromStringAndSize((const char *)self->lags, (Py_ssize_t)(self->nlags * sizeof(int64_t)));
    self->nlags = 0;
    pthread_mutex_unlock(&self->mu);
    return out;
}

static PyObject *Reader_close(Reader *self, PyObject *Py_UNUSED(ignored)) {
    reader_stop(self);
    Py_RETURN_NONE;
}

static PyMethodDef Reader_methods[] = {
    {"add", (PyCFunction)Reader_add, METH_VARARGS,
     "add(fd, token, not_before_ns=0): read fd on the thread; its reads are drained with this token, "
     "none timed earlier than not_before_ns (the request's send) or than the fd's read before it."},
    {"remove", (PyCFunction)Reader_remove, METH_VARARGS,
     "remove(fd): stop reading fd; after this returns the thread does not touch it."},
    {"drain", (PyCFunction)Reader_drain, METH_NOARGS,
     "drain() -> [(token, t_ns, data, err), ...]: every read since the last drain."},
    {"dispatch", (PyCFunction)Reader_dispatch, METH_O,
     "dispatch(callbacks) -> n: call callbacks[token](t_ns, data, err) for every read since the last drain; "
     "a value (log, on_read, on_fed) feeds the read to the compiled event log and calls on_fed(t_ns, events or error) "
     "only when it completed something to act on."},
    {"fileno", (PyCFunction)Reader_fileno, METH_NOARGS,
     "fileno(): an eventfd that is readable while reads wait to be drained."},
    {"stats", (PyCFunction)Reader_stats, METH_NOARGS,
     "stats() -> {'reads': n, 'stamped': n, 'wakeups': n, 'stepped': n, 'nice': n}; stamped: reads timed by the "
     "kernel, stepped: wake-ups timed as reads returned because the wall clock stepped, nice: the thread's priority"},
    {"_inject_clock_step", (PyCFunction)Reader_inject_clock_step, METH_O,
     "_inject_clock_step(ns): tests: the next wake-up that reads sockets sees the wall clock stepped by ns."},
    {"take_lags", (PyCFunction)Reader_take_lags, METH_NOARGS,
     "take_lags() -> bytes: the thread's wake-up lags (int64 ns) sampled every 50 ms since the last call."},
    {"close", (PyCFunction)Reader_close, METH_NOARGS, "close(): stop the thread."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sseload._reader.Reader",
    .tp_doc = "One native thread reading and timestamping every registered socket.",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
};

static PyObject *mod_now_ns(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromLongLong(now_ns());
}

/* The orphan watchdog: a child of sseload must not outlive it. PR_SET_PDEATHSIG asks for an
 * orderly SIGTERM when sseload dies, but a process whose main thread is stuck in C code that
 * holds the GIL never runs its Python signal handler (nor would a Python thread get the GIL).
 * This thread needs neither: once the parent it started under is gone, it waits the grace the
 * orderly stop may take, then SIGKILLs its own process. */
static void *watchdog_run(void *arg) {
    int64_t grace_ns = *(int64_t *)arg;
    free(arg);
    pid_t parent = getppid();
    struct timespec tick = {0, 200 * 1000 * 1000};
    while (getppid() == parent)
        nanosleep(&tick, NULL);
    int64_t until = now_ns() + grace_ns;
    while (now_ns() < until)
        nanosleep(&tick, NULL);
    kill(getpid(), SIGKILL);
    return NULL;
}

static int watchdog_started = 0;

static PyObject *mod_orphan_watchdog(PyObject *self, PyObject *arg) {
    double grace_s = PyFloat_AsDouble(arg);
    if (grace_s == -1.0 && PyErr_Occurred())
        return NULL;
    if (grace_s < 0) {
        PyErr_SetString(PyExc_ValueError, "the grace must not be negative");
        return NULL;
    }
    if (watchdog_started)
        Py_RETURN_FALSE;
    int64_t *grace_ns = malloc(sizeof(int64_t));
    if (!grace_ns)
        return PyErr_NoMemory();
    *grace_ns = (int64_t)(grace_s * 1e9);
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, watchdog_run, grace_ns);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(grace_ns);
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    watchdog_started = 1;
    Py_RETURN_TRUE;
}

static PyMethodDef module_methods[] = {
    {"now_ns", mod_now_ns, METH_NOARGS, "The reader thread's clock (CLOCK_MONOTONIC), in ns."},
    {"orphan_watchdog", mod_orphan_watchdog, METH_O,
     "orphan_watchdog(grace_s) -> bool: once the parent process is gone, SIGKILL this one after grace_s "
     "(even when its main thread is stuck in C); False when already started."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef reader_module = {
    PyModuleDef_HEAD_INIT, "sseload._reader", NULL, -1, module_methods,
};

PyMODINIT_FUNC PyInit__reader(void) {
    if (PyType_Ready(&ReaderType) < 0 || PyType_Ready(&TLSRouteType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&reader_module);
    if (!m)
        return NULL;
    Py_INCREF(&ReaderType);
    if (PyModule_AddObject(m, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(&ReaderType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&TLSRouteType);
    if (PyModule_AddObject(m, "TLSRoute", (PyObject *)&TLSRouteType) < 0) {
        Py_DECREF(&TLSRouteType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
