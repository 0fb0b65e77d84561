/* The floor: a C epoll reader of the bench's SSE streams that only times and counts events, for
 * `streams_bench.py --clients floor` (issue 33 item 2). What any client must spend per event on
 * this workload, with nothing of a harness: per read one clock reading (CLOCK_REALTIME, the clock
 * the target's embedded send times are in), a scan for event ends ("\n\n"), and in each ended
 * event the target's `"t_send_ns":` number for lateness; no HTTP parser (the chunked body's last
 * chunk, "\r\n0\r\n\r\n", ends a stream and the next request goes out on the same connection), no
 * SSE parser, no records beyond one 24-byte row per event. Not sseload's code.
 *
 *   cc -O2 -o floor bench/floor.c -lssl -lcrypto            (streams_bench.py builds it in bench/.build)
 *   floor --url http://127.0.0.1:PORT --users N --seconds S [--ramp 4] --out FILE
 *         [--path P] [--body B] [--key t_send_ns]
 *   floor --url https://127.0.0.1:PORT ...     TLS (OpenSSL, the certificate not verified: a floor)
 *
 * --seconds is the whole run, ramp included; the streams start evenly over --ramp. FILE gets one
 * row per event that carried the key, {int64 recv_ns; int64 lateness_ns; int64 first}, the same
 * facts bench/raw_client.py saves; stderr gets a line with events, CPU seconds and µs per event. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_MAX 65536
#define CARRY_MAX 65536

enum { CONNECTING, HANDSHAKE, STREAMING };

typedef struct {
    int fd, state, first;
    SSL *ssl;
    size_t sent; /* of the request, while it is going out */
    size_t carry_len;
    char carry[CARRY_MAX]; /* the unfinished event (or stream end) from the reads before */
} stream_t;

typedef struct {
    int64_t recv_ns, late_ns, first;
} row_t;

static char request[8192];
static size_t request_len;
static const char *key = "\"t_send_ns\":";
static size_t key_len;
static SSL_CTX *ctx;
static FILE *out;
static uint64_t events, streams_done;

static int64_t real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One ended event's bytes: its send time, if it carries one. */
static void on_event(stream_t *s, const char *ev, size_t len, int64_t now) {
    const char *at = memmem(ev, len, key, key_len);
    if (!at) return;
    const char *p = at + key_len, *end = ev + len;
    int64_t sent = 0;
    while (p < end && *p >= '0' && *p <= '9') sent = sent * 10 + (*p++ - '0');
    row_t row = {now, now - sent, s->first};
    fwrite(&row, sizeof row, 1, out);
    s->first = 0;
    events++;
}

/* Send what is left of the request; -1 when the connection broke. */
static int send_request(stream_t *s) {
    while (s->sent < request_len) {
        ssize_t n;
        if (s->ssl) {
            n = SSL_write(s->ssl, request + s->sent, (int)(request_len - s->sent));
            if (n <= 0) {
                int e = SSL_get_error(s->ssl, (int)n);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return 0;
                return -1;
            }
        } else {
            n = send(s->fd, request + s->sent, request_len - s->sent, MSG_NOSIGNAL);
            if (n < 0) return errno == EAGAIN ? 0 : -1;
        }
        s->sent += (size_t)n;
    }
    return 0;
}

/* A read's bytes: events ended in them are counted; a stream's end sends the next request. */
static int on_bytes(stream_t *s, const char *data, size_t len, int64_t now) {
    if (s->carry_len + len > CARRY_MAX) return -1; /* an event larger than this is not the bench's */
    memcpy(s->carry + s->carry_len, data, len);
    size_t have = s->carry_len + len, start = 0;
    /* an event ends at "\n\n"; the scan starts a byte back, where the last read may have left "\n" */
    size_t i = s->carry_len ? s->carry_len - 1 : 0;
    while (i + 1 < have) {
        char *nl = memchr(s->carry + i, '\n', have - i - 1); /* a newline with a byte after it */
        if (!nl) break;
        size_t at = (size_t)(nl - s->carry);
        if (nl[1] == '\n') {
            on_event(s, s->carry + start, at + 2 - start, now);
            start = i = at + 2;
        } else {
            i = at + 1;
        }
    }
    memmove(s->carry, s->carry + start, have - start);
    s->carry_len = have - start;
    if (memmem(s->carry, s->carry_len, "\r\n0\r\n\r\n", 7)) { /* the body's last chunk: the stream ended */
        s->carry_len = 0;
        s->first = 1;
        s->sent = 0;
        streams_done++;
        return send_request(s);
    }
    return 0;
}

static void close_stream(stream_t *s, int epfd) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
    if (s->ssl) SSL_free(s->ssl);
    close(s->fd);
    s->fd = -1;
}

static void on_ready(stream_t *s, int epfd) {
    if (s->state == CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            fprintf(stderr, "floor: connect: %s\n", strerror(err));
            close_stream(s, epfd);
            return;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
        epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
        s->state = ctx ? HANDSHAKE : STREAMING;
        if (ctx) {
            s->ssl = SSL_new(ctx);
            SSL_set_fd(s->ssl, s->fd);
            SSL_set_connect_state(s->ssl);
        } else if (send_request(s) < 0) {
            close_stream(s, epfd);
            return;
        }
    }
    if (s->state == HANDSHAKE) {
        int r = SSL_do_handshake(s->ssl);
        if (r != 1) {
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
            ERR_print_errors_fp(stderr);
            close_stream(s, epfd);
            return;
        }
        s->state = STREAMING;
        if (send_request(s) < 0) {
            close_stream(s, epfd);
            return;
        }
    }
    static char buf[READ_MAX];
    for (;;) {
        ssize_t n;
        if (s->ssl) {
            n = SSL_read(s->ssl, buf, sizeof buf);
            if (n <= 0) {
                int e = SSL_get_error(s->ssl, (int)n);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
                close_stream(s, epfd);
                return;
            }
        } else {
            n = recv(s->fd, buf, sizeof buf, 0);
            if (n < 0 && errno == EAGAIN) return;
            if (n <= 0) {
                close_stream(s, epfd);
                return;
            }
        }
        if (on_bytes(s, buf, (size_t)n, real_ns()) < 0) {
            close_stream(s, epfd);
            return;
        }
        if (s->state == STREAMING && s->sent < request_len && send_request(s) < 0) {
            close_stream(s, epfd);
            return;
        }
    }
}

int main(int argc, char **argv) {
    const char *url = NULL, *path = "/v1/infers/00000000-0000-4000-8000-000000000000/v1/stream", *out_path = NULL;
    const char *body = "{\"model\":\"sseload\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    int users = 0;
    double seconds = 0, ramp = 4.0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--url")) url = v;
        else if (!strcmp(a, "--users")) users = atoi(v);
        else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else if (!strcmp(a, "--ramp")) ramp = atof(v);
        else if (!strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--path")) path = v;
        else if (!strcmp(a, "--body")) body = v;
        else if (!strcmp(a, "--key")) key = v;
        else {
            fprintf(stderr, "floor: unknown option %s\n", a);
            return 2;
        }
    }
    int tls = url && !strncmp(url, "https://", 8);
    int port = 0;
    char host[256] = "";
    if (!url || sscanf(url + (tls ? 8 : 7), "%255[^:]:%d", host, &port) != 2 || users < 1 || seconds <= 0 || !out_path) {
        fprintf(stderr, "usage: floor --url http(s)://127.0.0.1:PORT --users N --seconds S --out FILE [--ramp S]\n");
        return 2;
    }
    key_len = strlen(key);
    request_len = (size_t)snprintf(request, sizeof request,
                                   "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                                   "Accept: text/event-stream\r\nContent-Length: %zu\r\n\r\n%s",
                                   path, host, port, strlen(body), body);
    if (request_len >= sizeof request) {
        fprintf(stderr, "floor: the request is over %zu bytes\n", sizeof request);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* as sseload's reader thread runs (nice -10), so lateness compares readers, not the scheduler's
     * treatment of them; without the privilege it stays at the default */
    if (setpriority(PRIO_PROCESS, 0, -10) < 0) perror("floor: nice -10 (left at the default)");
    if (tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    out = fopen(out_path, "wb");
    if (!out) {
        perror("floor: --out");
        return 1;
    }
    setvbuf(out, NULL, _IOFBF, 1 << 20);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "floor: %s is not an IPv4 address\n", host);
        return 2;
    }
    stream_t **streams = calloc((size_t)users, sizeof *streams);
    int epfd = epoll_create1(0), started = 0, on = 1;
    double t0 = mono_s();
    struct epoll_event ready[512];
    for (;;) {
        double now = mono_s() - t0;
        if (now >= seconds) break;
        /* start the streams due by now: evenly over the ramp, as Locust's spawn rate does */
        int due = ramp > 0 ? (int)(users * (now / ramp)) + 1 : users;
        for (; started < users && started < due; started++) {
            stream_t *s = calloc(1, sizeof *s);
            s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            s->first = 1;
            setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
            streams[started] = s;
            if (connect(s->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
                perror("floor: connect");
                close(s->fd);
                s->fd = -1;
                continue;
            }
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = s};
            epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
        }
        int wait_ms = started < users ? 1 : (int)((seconds - now) * 1000) + 1;
        if (wait_ms > 100) wait_ms = 100;
        int n = epoll_wait(epfd, ready, 512, wait_ms);
        for (int i = 0; i < n; i++) {
            stream_t *s = ready[i].data.ptr;
            if (s->fd >= 0) on_ready(s, epfd);
        }
    }
    for (int i = 0; i < started; i++)
        if (streams[i] && streams[i]->fd >= 0) close_stream(streams[i], epfd);
    fclose(out);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    fprintf(stderr, "floor: %llu events, %llu streams ended, %.3f s CPU, %.2f us per event (whole run, ramp included)\n",
            (unsigned long long)events, (unsigned long long)streams_done, cpu, events ? 1e6 * cpu / events : 0.0);
    return 0;
}
