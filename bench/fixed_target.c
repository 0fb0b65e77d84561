/* A fixed-schedule SSE server in C, plain or TLS (OpenSSL): the bench's target where the Python
 * reference target (sseload serve) is the bottleneck, as it is over TLS (it sends ~27,500 TLS
 * events/s on its core, a 2,000-stream workload needs ~80,000). Not sseload's code: it shares
 * nothing with the harness but the wire format of the reference target's events, so the bench's
 * lateness and TTFE error are computed the same way.
 *
 *   cc -O2 -o fixed_target bench/fixed_target.c -lssl -lcrypto      (bench/streams_bench.py does it)
 *   fixed_target --port 0 --port-file F [--tls-cert chain.pem --tls-key key.pem]
 *                [--ttfe-ms 200] [--gap-ms 20] [--events 50] [--payload-bytes 64] [--key-update-at N]
 *
 * Every request but the stats path gets `200 text/event-stream;charset=UTF-8`, chunked and kept
 * alive: the first event ttfe_ms after the request's head (and body) came, then one every gap_ms,
 * each `id: N\ndata: {"t_send_ns":T,"seq":N,"pad":"xxx"}\n\n` (T: the wall clock as it is
 * written), then `event: done\ndata: {"events":N}\n\n` and the chunked end. GET /_sseload/stats
 * answers the reference target's counters (events sent, CPU, schedule lateness percentiles); POST
 * resets them. --key-update-at N (tests): TLS 1.3 KeyUpdate, the client's asked for too, before
 * each stream's event N. One thread, epoll, a timer heap; lateness is when an event went out minus when it
 * was due (down to -0.5 ms: events due within HORIZON_NS go out together). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 65536
#define IN_MAX 65536
#define LATENESS_MAX 4000000
#define HORIZON_NS 500000

enum { HANDSHAKE, IDLE, STREAMING };

typedef struct {
    int fd, state, want_out;
    uint32_t gen;
    SSL *ssl;
    char *in;
    size_t in_len;
    char *out;
    size_t out_len, out_cap;
    int seq;
    int64_t t0;
} conn_t;

typedef struct {
    int64_t due;
    int fd;
    uint32_t gen;
} timer_t_;

static conn_t *conns[MAX_FDS];
static timer_t_ *heap;
static size_t heap_n, heap_cap;
static int epfd, tfd;
static SSL_CTX *ctx;
static int64_t ttfe_ns = 200000000, gap_ns = 20000000;
static int n_events = 50;
static int key_update_at = -1; /* tests: before this event of every stream, a TLS 1.3 KeyUpdate asking the client's */
static char pad[65536];
static uint64_t events_sent, requests, streams_started, streams_active;
static int64_t *lateness_us;
static size_t n_late;
static int64_t wall0;
static double cpu0;

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void heap_push(int64_t due, int fd, uint32_t gen) {
    if (heap_n == heap_cap) {
        heap_cap = heap_cap ? heap_cap * 2 : 4096;
        heap = realloc(heap, heap_cap * sizeof *heap);
        if (!heap) abort();
    }
    size_t i = heap_n++;
    while (i > 0 && heap[(i - 1) / 2].due > due) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = (timer_t_){due, fd, gen};
}

static timer_t_ heap_pop(void) {
    timer_t_ top = heap[0], last = heap[--heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= heap_n) break;
        if (c + 1 < heap_n && heap[c + 1].due < heap[c].due) c++;
        if (heap[c].due >= last.due) break;
        heap[i] = heap[c];
        i = c;
    }
    if (heap_n) heap[i] = last;
    return top;
}

static void watch(conn_t *c) {
    struct epoll_event ev = {.events = EPOLLIN | (c->want_out ? EPOLLOUT : 0), .data.fd = c->fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(conn_t *c) {
    if (c->state == STREAMING) streams_active--;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl) SSL_free(c->ssl);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->in);
    free(c->out);
    free(c);
}

/* Write what is pending; 0 while the connection lives, -1 when it broke (closed then). */
static int flush(conn_t *c) {
    size_t done = 0;
    while (done < c->out_len) {
        ssize_t n;
        if (c->ssl) {
            n = SSL_write(c->ssl, c->out + done, (int)(c->out_len - done));
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, (int)n);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) break;
                ERR_clear_error();
                conn_close(c);
                return -1;
            }
        } else {
            n = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                conn_close(c);
                return -1;
            }
        }
        done += (size_t)n;
    }
    memmove(c->out, c->out + done, c->out_len - done);
    c->out_len -= done;
    int want = c->out_len > 0;
    if (want != c->want_out) {
        c->want_out = want;
        watch(c);
    }
    return 0;
}

static int put(conn_t *c, const char *data, size_t len) {
    if (c->out_cap - c->out_len < len) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap - c->out_len < len) cap *= 2;
        char *p = realloc(c->out, cap);
        if (!p) abort();
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return c->want_out ? 0 : flush(c); /* behind already: the writable edge sends it */
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void pct_json(char *buf, size_t size, int64_t *sorted, size_t n, double p) {
    if (!n) {
        snprintf(buf, size, "null");
        return;
    }
    size_t i = (size_t)(p / 100.0 * (double)n);
    if (i >= n) i = n - 1;
    snprintf(buf, size, "%.3f", sorted[i] / 1000.0);
}

static int answer_stats(conn_t *c, int reset) {
    char body[1024];
    if (reset) {
        events_sent = requests = streams_started = 0;
        n_late = 0;
        wall0 = mono_ns();
        cpu0 = cpu_s();
        snprintf(body, sizeof body, "{}");
    } else {
        int64_t *sorted = malloc((n_late ? n_late : 1) * sizeof(int64_t));
        memcpy(sorted, lateness_us, n_late * sizeof(int64_t));
        qsort(sorted, n_late, sizeof(int64_t), cmp64);
        char p50[32], p99[32], p999[32], pmax[32];
        pct_json(p50, sizeof p50, sorted, n_late, 50);
        pct_json(p99, sizeof p99, sorted, n_late, 99);
        pct_json(p999, sizeof p999, sorted, n_late, 99.9);
        pct_json(pmax, sizeof pmax, sorted, n_late, 100);
        free(sorted);
        double wall = (mono_ns() - wall0) / 1e9, cpu = cpu_s() - cpu0;
        snprintf(body, sizeof body,
                 "{\"requests\":%llu,\"streams_started\":%llu,\"streams_active\":%llu,\"events_sent\":%llu,"
                 "\"cpu_s\":%.6f,\"wall_s\":%.6f,\"cpu_percent\":%.3f,"
                 "\"lateness_ms\":{\"p50\":%s,\"p99\":%s,\"p999\":%s,\"max\":%s}}",
                 (unsigned long long)requests, (unsigned long long)streams_started,
                 (unsigned long long)streams_active, (unsigned long long)events_sent, cpu, wall,
                 wall > 0 ? 100.0 * cpu / wall : 0.0, p50, p99, p999, pmax);
    }
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      strlen(body));
    if (put(c, head, (size_t)hn) < 0) return -1;
    return put(c, body, strlen(body));
}

/* A whole request in c->in: its length (head and body), else 0. */
static size_t request_len(conn_t *c) {
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t head = (size_t)(end - c->in) + 4, body = 0;
    for (char *line = memchr(c->in, '\n', head); line && line < c->in + head; line = memchr(line + 1, '\n',
                                                                                           c->in + head - line - 1)) {
        if (strncasecmp(line + 1, "content-length:", 15) == 0) body = strtoul(line + 16, NULL, 10);
    }
    return c->in_len >= head + body ? head + body : 0;
}

static int serve_requests(conn_t *c) {
    while (c->state == IDLE) {
        size_t len = request_len(c);
        if (!len) return 0;
        int stats = memmem(c->in, len < 256 ? len : 256, " /_sseload/stats", 16) != NULL;
        int post = strncmp(c->in, "POST", 4) == 0;
        memmove(c->in, c->in + len, c->in_len - len);
        c->in_len -= len;
        requests++;
        if (stats) {
            if (answer_stats(c, post) < 0) return -1;
            continue;
        }
        static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;charset=UTF-8\r\n"
                                   "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n";
        c->state = STREAMING;
        c->seq = 0;
        c->t0 = mono_ns();
        streams_started++;
        streams_active++;
        heap_push(c->t0 + ttfe_ns, c->fd, c->gen);
        if (put(c, head, sizeof head - 1) < 0) return -1;
    }
    return 0;
}

static void on_readable(conn_t *c) {
    if (c->state == HANDSHAKE) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
            ERR_clear_error();
            conn_close(c);
            return;
        }
        c->state = IDLE;
    }
    for (;;) {
        if (c->in_len == IN_MAX) { /* a request larger than this is not the bench's */
            conn_close(c);
            return;
        }
        ssize_t n;
        if (c->ssl) {
            n = SSL_read(c->ssl, c->in + c->in_len, (int)(IN_MAX - c->in_len));
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, (int)n);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
                ERR_clear_error();
                conn_close(c);
                return;
            }
        } else {
            n = recv(c->fd, c->in + c->in_len, IN_MAX - c->in_len, 0);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (n <= 0) {
                conn_close(c);
                return;
            }
        }
        c->in_len += (size_t)n;
    }
    serve_requests(c);
}

static void on_due(timer_t_ t, int64_t now) {
    conn_t *c = conns[t.fd];
    if (!c || c->gen != t.gen || c->state != STREAMING) return; /* closed since */
    if (n_late < LATENESS_MAX) lateness_us[n_late++] = (now - t.due) / 1000;
    char ev[66000 + 256];
    int body = snprintf(ev + 16, sizeof ev - 16, "id: %d\ndata: {\"t_send_ns\":%lld,\"seq\":%d,\"pad\":\"%s\"}\n\n",
                        c->seq, (long long)real_ns(), c->seq, pad);
    int pre = snprintf(ev, 16, "%x\r\n", body);
    memmove(ev + pre, ev + 16, (size_t)body);
    size_t len = (size_t)(pre + body);
    memcpy(ev + len, "\r\n", 2);
    len += 2;
    if (c->ssl && c->seq == key_update_at && SSL_version(c->ssl) == TLS1_3_VERSION)
        SSL_key_update(c->ssl, SSL_KEY_UPDATE_REQUESTED); /* goes out with the next write, before the event */
    events_sent++;
    c->seq++;
    if (c->seq == n_events) {
        char done[64];
        int dn = snprintf(done, sizeof done, "event: done\ndata: {\"events\":%d}\n\n", n_events);
        len += (size_t)snprintf(ev + len, sizeof ev - len, "%x\r\n%s\r\n0\r\n\r\n", dn, done);
        c->state = IDLE;
        streams_active--;
        if (put(c, ev, len) == 0) serve_requests(c);
        return;
    }
    heap_push(c->t0 + ttfe_ns + (int64_t)c->seq * gap_ns, c->fd, c->gen);
    put(c, ev, len);
}

static void arm(void) {
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    if (heap_n) {
        int64_t due = heap[0].due;
        spec.it_value.tv_sec = due / 1000000000LL;
        spec.it_value.tv_nsec = due % 1000000000LL;
        if (!spec.it_value.tv_sec && !spec.it_value.tv_nsec) spec.it_value.tv_nsec = 1;
    }
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &spec, NULL);
}

int main(int argc, char **argv) {
    int port = 0, payload = 64;
    const char *port_file = NULL, *cert = NULL, *key = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--port-file")) port_file = v;
        else if (!strcmp(a, "--tls-cert")) cert = v;
        else if (!strcmp(a, "--tls-key")) key = v;
        else if (!strcmp(a, "--ttfe-ms")) ttfe_ns = (int64_t)(atof(v) * 1e6);
        else if (!strcmp(a, "--gap-ms")) gap_ns = (int64_t)(atof(v) * 1e6);
        else if (!strcmp(a, "--events")) n_events = atoi(v);
        else if (!strcmp(a, "--payload-bytes")) payload = atoi(v);
        else if (!strcmp(a, "--key-update-at")) key_update_at = atoi(v);
        else {
            fprintf(stderr, "fixed_target: unknown option %s\n", a);
            return 2;
        }
    }
    if (payload < 0 || payload >= (int)sizeof pad || n_events < 1) {
        fprintf(stderr, "fixed_target: --payload-bytes must be in [0, 65535] and --events at least 1\n");
        return 2;
    }
    memset(pad, 'x', (size_t)payload);
    signal(SIGPIPE, SIG_IGN);
    if (cert) {
        ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key ? key : cert, SSL_FILETYPE_PEM) != 1) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    lateness_us = malloc(LATENESS_MAX * sizeof(int64_t));
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), on = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(ls, 4096) < 0) {
        perror("fixed_target: listen");
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(ls, (struct sockaddr *)&addr, &alen);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f) {
            perror("fixed_target: port file");
            return 1;
        }
        fprintf(f, "%d", ntohs(addr.sin_port));
        fclose(f);
        rename(tmp, port_file);
    }
    epfd = epoll_create1(0);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(epfd, EPOLL_CTL_ADD, ls, &ev);
    ev.data.fd = tfd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev);
    wall0 = mono_ns();
    cpu0 = cpu_s();
    uint32_t gen = 0;
    struct epoll_event events[512];
    for (;;) {
        int n = epoll_wait(epfd, events, 512, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == tfd) {
                uint64_t x;
                ssize_t r = read(tfd, &x, sizeof x);
                (void)r;
            } else if (fd == ls) {
                int cfd;
                while ((cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (cfd >= MAX_FDS) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
                    conn_t *c = calloc(1, sizeof *c);
                    c->fd = cfd;
                    c->gen = ++gen;
                    c->in = malloc(IN_MAX);
                    c->state = ctx ? HANDSHAKE : IDLE;
                    if (ctx) {
                        c->ssl = SSL_new(ctx);
                        SSL_set_fd(c->ssl, cfd);
                        SSL_set_accept_state(c->ssl);
                    }
                    conns[cfd] = c;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &cev);
                }
            } else if (conns[fd]) {
                conn_t *c = conns[fd];
                if ((events[i].events & EPOLLOUT) && c->state != HANDSHAKE && flush(c) < 0) continue;
                if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR) || c->state == HANDSHAKE)
                    on_readable(c);
            }
        }
        /* what is due within half a millisecond goes out now, as the reference target does: each
         * wake-up serves many streams (a wake-up per event cost a third of this process's CPU) */
        int64_t now;
        while (heap_n && heap[0].due <= (now = mono_ns()) + HORIZON_NS) on_due(heap_pop(), now);
        arm();
    }
}
