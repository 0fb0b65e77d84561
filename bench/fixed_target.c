/* A fixed-schedule SSE server in C, plain or TLS (OpenSSL): the bench's target where the Python
 * reference target (sseload serve) is the bottleneck, as it is over TLS (it sends ~27,500 TLS
 * events/s on its core, a 2,000-stream workload needs ~80,000). Not sseload's code: it shares
 * nothing with the harness but the wire format of the reference target's events, so the bench's
 * lateness and TTFE error are computed the same way.
 *
 *   cc -O2 -o fixed_target bench/fixed_target.c -lssl -lcrypto      (bench/streams_bench.py does it)
 *   fixed_target --port 0 --port-file F [--tls-cert chain.pem --tls-key key.pem]
 *                [--ttfe-ms 200] [--gap-ms 20] [--events 50] [--payload-bytes 64] [--key-update-at N]
 *                [--openai] [--log FILE]
 *
 * Every request but the stats path gets `200 text/event-stream;charset=UTF-8`, chunked and kept
 * alive: the first event ttfe_ms after the request's head (and body) came, then one every gap_ms,
 * each `id: N\ndata: {"t_send_ns":T,"seq":N,"pad":"xxx"}\n\n` (T: the wall clock as it is
 * written), then `event: done\ndata: {"events":N}\n\n` and the chunked end. GET /_sseload/stats
 * answers the reference target's counters (events sent, CPU, schedule lateness percentiles); POST
 * resets them. --key-update-at N (tests): TLS 1.3 KeyUpdate, the client's asked for too, before
 * each stream's event N. One thread, epoll, a timer heap; lateness is when an event went out minus when it
 * was due (down to -0.5 ms: events due within HORIZON_NS go out together).
 *
 * --openai (bench/peers/, the ground truth the LLM benchmarks are held to): each stream is an
 * OpenAI chat completion instead: the role chunk at once with the response head, the first
 * content chunk (one word, " tok") ttfe_ms after the request, then one every gap_ms on the same
 * absolute schedule, --events of them, then a chunk with finish_reason "stop" and usage, and
 * `data: [DONE]`. Every chunk carries "t_send_ns" (the wall clock as it is written), as the plain
 * events do; events_sent counts content chunks. --log FILE: every request's arrival and every
 * chunk's send time, CLOCK_MONOTONIC, as 16-byte records {int64 t_ns; uint32 request; int32 what}
 * (what: -2 the request came, -1 the head (and role chunk) went out, 0..events-1 that content
 * chunk or plain event, events the end); written through a buffer, flushed on SIGTERM or SIGINT.
 * With --log, a plain request's arrival is the kernel's receive time of its last bytes
 * (SO_TIMESTAMPNS), and its schedule counts from there: a server busy elsewhere when the request
 * came would otherwise shift the truth with it; over TLS it is when the request was decrypted. */
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
    uint32_t req;
    int64_t t0;
    int64_t rx_real; /* --log, plain: the kernel's receive time of the last bytes read (SO_TIMESTAMPNS) */
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
static int openai;
static FILE *log_file;
static uint32_t next_req;
static volatile sig_atomic_t stopping;

typedef struct {
    int64_t t_ns;
    uint32_t req;
    int32_t what;
} log_rec_t;

static void log_send(uint32_t req, int32_t what, int64_t t_ns) {
    if (!log_file) return;
    log_rec_t r = {t_ns, req, what};
    fwrite(&r, sizeof r, 1, log_file);
}

static void on_stop(int sig) {
    (void)sig;
    stopping = 1;
}

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
        if (c->rx_real) { /* --log: the request's arrival (and the schedule) from the kernel's receive time */
            int64_t age = real_ns() - c->rx_real;
            if (age > 0) c->t0 -= age;
            c->rx_real = 0;
        }
        c->req = next_req++;
        streams_started++;
        streams_active++;
        heap_push(c->t0 + ttfe_ns, c->fd, c->gen);
        log_send(c->req, -2, c->t0);
        if (!openai) {
            if (put(c, head, sizeof head - 1) < 0) return -1;
            log_send(c->req, -1, mono_ns());
            continue;
        }
        char out[1024];
        size_t out_len = sizeof head - 1;
        memcpy(out, head, out_len);
        char data[512];
        int dn = snprintf(data, sizeof data,
                          "data: {\"id\":\"chatcmpl-%u\",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
                          "\"model\":\"truth\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                          "\"content\":\"\"},\"finish_reason\":null}],\"t_send_ns\":%lld}\n\n",
                          c->req, (long long)(real_ns() / 1000000000LL), (long long)real_ns());
        out_len += (size_t)snprintf(out + out_len, sizeof out - out_len, "%x\r\n%s\r\n", dn, data);
        if (put(c, out, out_len) < 0) return -1;
        log_send(c->req, -1, mono_ns());
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
            if (log_file) { /* the truth: when the request reached the host, not when this loop got to it */
                struct iovec iov = {c->in + c->in_len, IN_MAX - c->in_len};
                char control[CMSG_SPACE(sizeof(struct timespec))];
                struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                                     .msg_controllen = sizeof control};
                n = recvmsg(c->fd, &msg, 0);
                for (struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm; cm = CMSG_NXTHDR(&msg, cm))
                    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
                        struct timespec ts;
                        memcpy(&ts, CMSG_DATA(cm), sizeof ts);
                        c->rx_real = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
                    }
            } else {
                n = recv(c->fd, c->in + c->in_len, IN_MAX - c->in_len, 0);
            }
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
    char ev[66000 + 1024];
    int body;
    if (openai)
        body = snprintf(ev + 16, sizeof ev - 16,
                        "data: {\"id\":\"chatcmpl-%u\",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
                        "\"model\":\"truth\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"},"
                        "\"finish_reason\":null}],\"t_send_ns\":%lld}\n\n",
                        c->req, (long long)(real_ns() / 1000000000LL), c->seq ? " tok" : "tok", (long long)real_ns());
    else
        body = snprintf(ev + 16, sizeof ev - 16, "id: %d\ndata: {\"t_send_ns\":%lld,\"seq\":%d,\"pad\":\"%s\"}\n\n",
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
    uint32_t req = c->req;
    int seq = c->seq;
    if (c->seq == n_events) {
        char done[512];
        int dn = openai
            ? snprintf(done, sizeof done,
                       "data: {\"id\":\"chatcmpl-%u\",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
                       "\"model\":\"truth\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
                       "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":%d,\"total_tokens\":%d},"
                       "\"t_send_ns\":%lld}\n\ndata: [DONE]\n\n",
                       c->req, (long long)(real_ns() / 1000000000LL), n_events, n_events + 1, (long long)real_ns())
            : snprintf(done, sizeof done, "event: done\ndata: {\"events\":%d}\n\n", n_events);
        len += (size_t)snprintf(ev + len, sizeof ev - len, "%x\r\n%s\r\n0\r\n\r\n", dn, done);
        c->state = IDLE;
        streams_active--;
        int sent = put(c, ev, len);
        int64_t t = mono_ns();
        log_send(req, seq - 1, t);
        log_send(req, seq, t);
        if (sent == 0) serve_requests(c);
        return;
    }
    heap_push(c->t0 + ttfe_ns + (int64_t)c->seq * gap_ns, c->fd, c->gen);
    put(c, ev, len);
    log_send(req, seq - 1, mono_ns());
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
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--openai")) { /* the one flag without a value */
            openai = 1;
            i--;
            continue;
        }
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--port-file")) port_file = v;
        else if (!strcmp(a, "--tls-cert")) cert = v;
        else if (!strcmp(a, "--tls-key")) key = v;
        else if (!strcmp(a, "--ttfe-ms")) ttfe_ns = (int64_t)(atof(v) * 1e6);
        else if (!strcmp(a, "--gap-ms")) gap_ns = (int64_t)(atof(v) * 1e6);
        else if (!strcmp(a, "--events")) n_events = atoi(v);
        else if (!strcmp(a, "--payload-bytes")) payload = atoi(v);
        else if (!strcmp(a, "--key-update-at")) key_update_at = atoi(v);
        else if (!strcmp(a, "--log")) {
            log_file = fopen(v, "wb");
            if (!log_file) {
                perror("fixed_target: --log");
                return 1;
            }
            setvbuf(log_file, NULL, _IOFBF, 1 << 20);
        } else {
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
    struct sigaction stop = {.sa_handler = on_stop}; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGINT, &stop, NULL);
    sigset_t stop_set, wait_set; /* delivered only inside epoll_pwait, so no stop is missed */
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_set, &wait_set);
    sigdelset(&wait_set, SIGTERM);
    sigdelset(&wait_set, SIGINT);
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
        int n = epoll_pwait(epfd, events, 512, -1, &wait_set);
        if (stopping) {
            if (log_file) fclose(log_file);
            return 0;
        }
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
                    if (log_file) setsockopt(cfd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
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
