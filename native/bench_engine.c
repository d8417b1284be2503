// Optional native engine for `upcase bench` (src/bench/native.ts): the closed-loop
// TCP (pipelined) and UDP request/response loops on a thread of their own, with
// epoll, batched reads and writes for TCP, and recvmmsg/sendmmsg for UDP.
//
// It follows the JavaScript engine (src/bench/tcp.ts, src/bench/udp.ts) rule for
// rule: the same request bytes and expected replies (prepared in TypeScript and
// handed over), every reply compared byte for byte, the same error classes. The
// latencies go into counts laid out as hdr-histogram-js lays out its buckets (1 ns
// to an hour, 3 significant digits), which TypeScript adds into the run's
// histogram bucket by bucket, with the exact min and max beside them: the figures
// are those of recording every latency there. Counters and counts are guarded by
// one mutex, which the engine holds while it handles one batch of events.
// Linux only; anywhere else the build is skipped and the JavaScript engine runs.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "napi_check.h"
#include "napi_constants.h"

// Counters, as doubles in the Float64Array that poll() fills; exported as `counters`.
enum {
  C_OK,          // replies equal to the expected uppercase
  C_MISMATCH,    // replies that differ
  C_TIMEOUT,     // requests with no reply within the timeout
  C_CLOSED,      // requests in flight on a connection the server closed or reset
  C_UNEXPECTED,  // reply bytes or datagrams answering no request in flight
  C_SOCKET,      // socket errors (reset, ICMP unreachable, ...)
  C_LATE,        // UDP replies to a request that had timed out already
  C_SENT,        // requests sent
  C_BYTES_SENT,
  C_BYTES_RECEIVED,
  C_IN_FLIGHT,   // requests sent and not settled
  C_ALIVE,       // connections still usable
  C_STATE,       // one of the states below
  C_ERRNO,       // with STATE_FAILED: the connect errno
  C_CPU_NS,      // the engine thread's CPU time
  C_MIN_NS,      // exact smallest and largest latency among the counts poll() returned
  C_MAX_NS,
  C_COUNT
};
enum { STATE_CONNECTING, STATE_READY, STATE_RUNNING, STATE_FAILED, STATE_DONE, STATE_COUNT };

// hdr-histogram-js's layout for lowestDiscernibleValue 1, 3 significant digits:
// sub-buckets of 2048 (half 1024), leading-zero base 64 - 0 - 10 - 1 = 53.
#define HDR_HIGHEST 3600000000000ull
#define HDR_SUB_HALF_MAGNITUDE 10
#define HDR_SUB_HALF 1024
#define HDR_SUB_MASK 2047ull
#define HDR_LZ_BASE 53
#define HDR_SLOTS (34 * HDR_SUB_HALF)

#define SEQ_DIGITS 10
#define MAX_EVENTS 256
#define UDP_BATCH 64
#define UDP_BUFFER 65536
#define TCP_READ 262144
#define SOCKET_BUFFER_BYTES (4 * 1024 * 1024)

enum { SLOT_DONE, SLOT_IN_FLIGHT, SLOT_TIMED_OUT };

typedef struct {
  int fd;
  int alive;
  int want_out;   // EPOLLOUT registered: bytes are owed
  int bad;        // the current reply differed somewhere
  uint32_t first; // this connection's first body (index mod variants)
  uint64_t sent, answered;
  uint64_t owed;  // request bytes not yet written
  uint64_t woff;  // where the next request byte is in the body period
  uint64_t roff;  // bytes of the current reply received
  uint64_t *sent_at; // ring: send time of request r at r mod pipeline
} tconn_t;

typedef struct {
  int fd;
  uint32_t index;
  uint64_t *seq, *sent_at;
  unsigned char *state;
  unsigned char *bufs;  // pipeline datagrams of `size` bytes
  uint64_t in_flight;
} usock_t;

typedef struct {
  // Configuration (read-only once the thread runs).
  int udp;
  int family;
  struct sockaddr_storage addr;
  socklen_t addr_len;
  uint32_t conns_n, pipeline, size, variants;
  uint64_t timeout_ns;
  unsigned char *period;    // TCP: the bodies twice in a row; UDP: the bodies (size - SEQ_DIGITS each)
  unsigned char *expected;  // the expected replies one after another
  uint32_t *exp_off;        // variants + 1 offsets into `expected`
  tconn_t *tconns;
  usock_t *usocks;

  pthread_t thread;
  int thread_started;
  int epfd, wakefd;
  pthread_mutex_t mu;
  // Guarded by mu.
  int go, quit, sending, closed;
  double counters[C_COUNT];
  uint64_t *counts;  // HDR_SLOTS
  uint64_t min_ns, max_ns, recorded;
} engine_t;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// The slot of hdr-histogram-js's counts array that holds `ns` (countsArrayIndex), clamped as src/bench/histogram.ts clamps.
static int slot_of(uint64_t ns) {
  if (ns < 1) ns = 1;
  if (ns > HDR_HIGHEST) ns = HDR_HIGHEST;
  int bucket = HDR_LZ_BASE - __builtin_clzll(ns | HDR_SUB_MASK);
  int sub = (int)(ns >> bucket);
  return ((bucket + 1) << HDR_SUB_HALF_MAGNITUDE) + (sub - HDR_SUB_HALF);
}

static void record(engine_t *e, uint64_t ns) {
  if (ns < 1) ns = 1;
  if (ns > HDR_HIGHEST) ns = HDR_HIGHEST;
  e->counts[slot_of(ns)]++;
  if (e->recorded == 0 || ns < e->min_ns) e->min_ns = ns;
  if (ns > e->max_ns) e->max_ns = ns;
  e->recorded++;
}

// The value hdr-histogram-js gives the start of bucket slot `index` (valueFromIndex).
static uint64_t slot_value(int index) {
  int bucket = (index >> HDR_SUB_HALF_MAGNITUDE) - 1;
  int sub = (index & (HDR_SUB_HALF - 1)) + HDR_SUB_HALF;
  if (bucket < 0) {
    sub -= HDR_SUB_HALF;
    bucket = 0;
  }
  return (uint64_t)sub << bucket;
}

static void wake(engine_t *e) {
  uint64_t one = 1;
  ssize_t r = write(e->wakefd, &one, sizeof one);
  (void)r;
}

// ---------------------------------------------------------------- TCP

static void tconn_drop(engine_t *e, tconn_t *c) {
  c->alive = 0;
  c->answered = c->sent;
  epoll_ctl(e->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
}

// The server closed or reset the connection (or a write failed): its requests in flight are `closed`.
static void tconn_lost(engine_t *e, tconn_t *c, int socket_error) {
  if (socket_error) e->counters[C_SOCKET]++;
  e->counters[C_CLOSED] += (double)(c->sent - c->answered);
  tconn_drop(e, c);
}

static void tconn_flush(engine_t *e, tconn_t *c, uint64_t idx) {
  uint64_t period = (uint64_t)e->variants * e->size;
  while (c->owed > 0) {
    // The period is laid out twice: up to one period is contiguous from woff.
    struct iovec iov[8];
    int n = 0;
    uint64_t left = c->owed, off = c->woff;
    while (left > 0 && n < 8) {
      uint64_t len = left < period ? left : period;
      iov[n].iov_base = e->period + off;
      iov[n].iov_len = (size_t)len;
      n++;
      left -= len;
      off = (off + len) % period;
    }
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!c->want_out) {
          struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = idx};
          epoll_ctl(e->epfd, EPOLL_CTL_MOD, c->fd, &ev);
          c->want_out = 1;
        }
        return;
      }
      tconn_lost(e, c, 1);
      return;
    }
    c->owed -= (uint64_t)w;
    c->woff = (c->woff + (uint64_t)w) % period;
    e->counters[C_BYTES_SENT] += (double)w;
  }
  if (c->want_out) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = idx};
    epoll_ctl(e->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = 0;
  }
}

static void tconn_send(engine_t *e, tconn_t *c, uint64_t n, uint64_t now, uint64_t idx) {
  for (uint64_t j = 0; j < n; j++) c->sent_at[(c->sent + j) % e->pipeline] = now;
  c->sent += n;
  c->owed += n * e->size;
  e->counters[C_SENT] += (double)n;
  tconn_flush(e, c, idx);
}

static void tconn_receive(engine_t *e, tconn_t *c, const unsigned char *buf, size_t len, uint64_t now) {
  size_t pos = 0;
  e->counters[C_BYTES_RECEIVED] += (double)len;
  while (pos < len) {
    if (c->answered == c->sent) {
      // Bytes past every reply owed: the server sent more than it was asked for.
      e->counters[C_UNEXPECTED]++;
      break;
    }
    uint32_t k = (uint32_t)((c->first + c->answered) % e->variants);
    const unsigned char *want = e->expected + e->exp_off[k];
    uint64_t want_len = e->exp_off[k + 1] - e->exp_off[k];
    uint64_t take = want_len - c->roff;
    if (take > len - pos) take = len - pos;
    if (!c->bad && memcmp(buf + pos, want + c->roff, (size_t)take) != 0) c->bad = 1;
    pos += (size_t)take;
    if (c->roff + take < want_len) {
      c->roff += take;
      break;
    }
    c->roff = 0;
    if (c->bad) {
      c->bad = 0;
      e->counters[C_MISMATCH]++;
    } else {
      e->counters[C_OK]++;
      record(e, now - c->sent_at[c->answered % e->pipeline]);
    }
    c->answered++;
  }
}

static void tcp_event(engine_t *e, uint64_t idx, uint32_t events, unsigned char *rbuf) {
  tconn_t *c = &e->tconns[idx];
  if (!c->alive) return;
  if (events & EPOLLOUT) tconn_flush(e, c, idx);
  if (!c->alive || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  uint64_t before = c->answered;
  // Batched reads: everything the kernel holds, up to TCP_READ at a time, before answering.
  for (int round = 0; round < 4; round++) {
    ssize_t r = recv(c->fd, rbuf, TCP_READ, MSG_DONTWAIT);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (r <= 0) {
      tconn_lost(e, c, r < 0);
      return;
    }
    tconn_receive(e, c, rbuf, (size_t)r, now_ns());
    if ((size_t)r < TCP_READ) break;
  }
  uint64_t done = c->answered - before;
  if (e->sending && done > 0) tconn_send(e, c, done, now_ns(), idx);
}

static void tcp_scan(engine_t *e, uint64_t now) {
  for (uint32_t i = 0; i < e->conns_n; i++) {
    tconn_t *c = &e->tconns[i];
    if (!c->alive || c->answered == c->sent) continue;
    if (now - c->sent_at[c->answered % e->pipeline] <= e->timeout_ns) continue;
    // A connection whose oldest request waits past the timeout is given up.
    e->counters[C_TIMEOUT] += (double)(c->sent - c->answered);
    tconn_drop(e, c);
  }
}

// ---------------------------------------------------------------- UDP

static void useq(unsigned char *p, uint64_t seq) {
  seq %= 10000000000ull;
  for (int i = SEQ_DIGITS - 1; i >= 0; i--) {
    p[i] = (unsigned char)('0' + seq % 10);
    seq /= 10;
  }
}

static int64_t read_seq(const unsigned char *p, size_t len) {
  if (len < SEQ_DIGITS) return -1;
  int64_t v = 0;
  for (int i = 0; i < SEQ_DIGITS; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    v = v * 10 + (p[i] - '0');
  }
  return v;
}

typedef struct {
  struct mmsghdr msgs[UDP_BATCH];
  struct iovec iov[UDP_BATCH];
  int n;
} sendq_t;

static void uerror(engine_t *e, usock_t *s, int err, sendq_t *q, uint64_t now);

// Queues slot j's next request (sequence seq + pipeline).
static void uqueue(engine_t *e, usock_t *s, uint32_t j, uint64_t now, sendq_t *q) {
  unsigned char *b = s->bufs + (size_t)j * e->size;
  s->seq[j] += e->pipeline;
  useq(b, s->seq[j]);
  s->sent_at[j] = now;
  s->state[j] = SLOT_IN_FLIGHT;
  s->in_flight++;
  e->counters[C_SENT]++;
  q->iov[q->n].iov_base = b;
  q->iov[q->n].iov_len = e->size;
  memset(&q->msgs[q->n].msg_hdr, 0, sizeof q->msgs[q->n].msg_hdr);
  q->msgs[q->n].msg_hdr.msg_iov = &q->iov[q->n];
  q->msgs[q->n].msg_hdr.msg_iovlen = 1;
  q->n++;
}

static void uflush(engine_t *e, usock_t *s, sendq_t *q, uint64_t now) {
  // An error can queue more sends (an ICMP error settles a request, whose slot sends again). Against
  // a closed port that could go on and on: after a few rounds what is left stays in flight and times out.
  for (int rounds = 0; q->n > 0 && rounds < 8; rounds++) {
    int n = q->n, at = 0;
    sendq_t rest;
    rest.n = 0;
    while (at < n) {
      int r = sendmmsg(s->fd, q->msgs + at, (unsigned)(n - at), MSG_DONTWAIT);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) break; // left to time out
      if (r < 0) {
        // The first message was not sent: this error (often an ICMP report of an earlier datagram) is
        // the socket's, and settles the oldest request in flight. The unsent datagram is not a request:
        // its queueing is undone, and its slot is sent again if the run still sends.
        int err = errno;
        uint32_t j = (uint32_t)(((unsigned char *)q->iov[at].iov_base - s->bufs) / e->size);
        at++;
        s->state[j] = SLOT_DONE;
        s->in_flight--;
        e->counters[C_SENT]--;
        uerror(e, s, err, &rest, now);
        if (e->sending && rest.n < UDP_BATCH) uqueue(e, s, j, now, &rest);
        continue;
      }
      for (int k = at; k < at + r; k++) e->counters[C_BYTES_SENT] += (double)q->msgs[k].msg_len;
      at += r;
    }
    *q = rest;
    // rest's iovecs point into the socket's buffers, not into rest: the copy is sound.
    for (int k = 0; k < q->n; k++) q->msgs[k].msg_hdr.msg_iov = &q->iov[k];
  }
}

// A socket error. A connected UDP socket reports an ICMP error (port unreachable) without saying
// which datagram caused it: it settles the oldest request in flight (not left to time out).
static void uerror(engine_t *e, usock_t *s, int err, sendq_t *q, uint64_t now) {
  e->counters[C_SOCKET]++;
  if (err != ECONNREFUSED && err != EHOSTUNREACH && err != ENETUNREACH) return;
  int oldest = -1;
  for (uint32_t j = 0; j < e->pipeline; j++)
    if (s->state[j] == SLOT_IN_FLIGHT && (oldest < 0 || s->sent_at[j] < s->sent_at[oldest])) oldest = (int)j;
  if (oldest < 0) return;
  s->state[oldest] = SLOT_TIMED_OUT;
  s->in_flight--;
  if (e->sending && q->n < UDP_BATCH) uqueue(e, s, (uint32_t)oldest, now, q);
}

static void udp_event(engine_t *e, usock_t *s, unsigned char (*rbufs)[UDP_BUFFER]) {
  struct mmsghdr msgs[UDP_BATCH];
  struct iovec iov[UDP_BATCH];
  for (int round = 0; round < 8; round++) {
    for (int k = 0; k < UDP_BATCH; k++) {
      iov[k].iov_base = rbufs[k];
      iov[k].iov_len = UDP_BUFFER;
      memset(&msgs[k].msg_hdr, 0, sizeof msgs[k].msg_hdr);
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
    }
    sendq_t q;
    q.n = 0;
    int m = recvmmsg(s->fd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
    uint64_t now = now_ns();
    if (m < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      uerror(e, s, errno, &q, now);
      uflush(e, s, &q, now);
      continue;
    }
    if (m == 0) return;
    for (int k = 0; k < m; k++) {
      size_t len = msgs[k].msg_len;
      e->counters[C_BYTES_RECEIVED] += (double)len;
      int64_t seq = read_seq(rbufs[k], len);
      if (seq < 0) {
        e->counters[C_UNEXPECTED]++;
        continue;
      }
      uint32_t j = (uint32_t)((uint64_t)seq % e->pipeline);
      if (s->seq[j] != (uint64_t)seq || s->state[j] != SLOT_IN_FLIGHT) {
        // An earlier request of this slot (timed out already, or a duplicate) is late; a sequence number never sent answers nothing.
        if ((uint64_t)seq <= s->seq[j]) e->counters[C_LATE]++;
        else e->counters[C_UNEXPECTED]++;
        continue;
      }
      s->state[j] = SLOT_DONE;
      s->in_flight--;
      uint32_t v = (j + s->index) % e->variants;
      uint32_t want_len = e->exp_off[v + 1] - e->exp_off[v];
      if (len == SEQ_DIGITS + want_len && memcmp(rbufs[k] + SEQ_DIGITS, e->expected + e->exp_off[v], want_len) == 0) {
        e->counters[C_OK]++;
        record(e, now - s->sent_at[j]);
      } else {
        e->counters[C_MISMATCH]++;
      }
      if (e->sending) uqueue(e, s, j, now, &q);
    }
    uflush(e, s, &q, now);
    if (m < UDP_BATCH) return;
  }
}

static void udp_scan(engine_t *e, uint64_t now) {
  for (uint32_t i = 0; i < e->conns_n; i++) {
    usock_t *s = &e->usocks[i];
    sendq_t q;
    q.n = 0;
    for (uint32_t j = 0; j < e->pipeline; j++) {
      if (s->state[j] != SLOT_IN_FLIGHT || now - s->sent_at[j] <= e->timeout_ns) continue;
      s->state[j] = SLOT_TIMED_OUT;
      s->in_flight--;
      e->counters[C_TIMEOUT]++;
      if (e->sending) uqueue(e, s, j, now, &q);
      if (q.n == UDP_BATCH) uflush(e, s, &q, now);
    }
    uflush(e, s, &q, now);
  }
}

static void udp_start(engine_t *e, usock_t *s, uint64_t now) {
  sendq_t q;
  q.n = 0;
  for (uint32_t j = 0; j < e->pipeline; j++) {
    // uqueue adds the pipeline: start one round earlier so slot j sends seq j first.
    s->seq[j] = (uint64_t)j - e->pipeline;
    uqueue(e, s, j, now, &q);
    if (q.n == UDP_BATCH) uflush(e, s, &q, now);
  }
  uflush(e, s, &q, now);
}

// ---------------------------------------------------------------- the thread

static int connect_all(engine_t *e) {
  uint64_t deadline = now_ns() + e->timeout_ns;
  for (uint32_t i = 0; i < e->conns_n; i++) {
    int fd = socket(e->family, (e->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    if (e->udp) {
      e->usocks[i].fd = fd;
      int sz = SOCKET_BUFFER_BYTES;
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
      if (connect(fd, (struct sockaddr *)&e->addr, e->addr_len) < 0) return errno;
    } else {
      e->tconns[i].fd = fd;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (connect(fd, (struct sockaddr *)&e->addr, e->addr_len) < 0) {
        if (errno != EINPROGRESS) return errno;
        for (;;) {
          pthread_mutex_lock(&e->mu);
          int quit = e->quit;
          pthread_mutex_unlock(&e->mu);
          if (quit) return ECANCELED;
          uint64_t now = now_ns();
          if (now >= deadline) return ETIMEDOUT;
          uint64_t left_ms = (deadline - now) / 1000000 + 1;
          struct pollfd p = {.fd = fd, .events = POLLOUT};
          int r = poll(&p, 1, left_ms < 50 ? (int)left_ms : 50);
          if (r < 0 && errno != EINTR) return errno;
          if (r > 0) break;
        }
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) return err;
      }
      e->tconns[i].alive = 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) return errno;
  }
  return 0;
}

static void tally_live(engine_t *e) {
  uint64_t in_flight = 0, alive = 0;
  for (uint32_t i = 0; i < e->conns_n; i++) {
    if (e->udp) {
      in_flight += e->usocks[i].in_flight;
      alive++;
    } else if (e->tconns[i].alive) {
      in_flight += e->tconns[i].sent - e->tconns[i].answered;
      alive++;
    }
  }
  e->counters[C_IN_FLIGHT] = (double)in_flight;
  e->counters[C_ALIVE] = (double)alive;
}

static void *engine_main(void *arg) {
  engine_t *e = arg;
  int err = connect_all(e);
  pthread_mutex_lock(&e->mu);
  if (err != 0) {
    e->counters[C_STATE] = STATE_FAILED;
    e->counters[C_ERRNO] = err;
    pthread_mutex_unlock(&e->mu);
    return NULL;
  }
  unsigned char *rbuf = e->udp ? NULL : malloc(TCP_READ);
  unsigned char(*rbufs)[UDP_BUFFER] = e->udp ? malloc((size_t)UDP_BATCH * UDP_BUFFER) : NULL;
  if ((e->udp && rbufs == NULL) || (!e->udp && rbuf == NULL)) {
    e->counters[C_STATE] = STATE_FAILED;
    e->counters[C_ERRNO] = ENOMEM;
    pthread_mutex_unlock(&e->mu);
    free(rbuf);
    free(rbufs);
    return NULL;
  }
  e->counters[C_STATE] = STATE_READY;
  tally_live(e);
  pthread_mutex_unlock(&e->mu);
  // Timeouts are looked for 4 times per timeout, at least every 100 ms (as src/bench/run.ts does).
  uint64_t scan_every = e->timeout_ns / 4 < 100000000ull ? e->timeout_ns / 4 : 100000000ull;
  if (scan_every < 1000000) scan_every = 1000000;
  uint64_t last_scan = now_ns(), now;
  struct epoll_event evs[MAX_EVENTS];
  // From READY on, replies are read: bytes that come before any request count (as `unexpected`), as they do in JavaScript.
  for (;;) {
    int n = epoll_wait(e->epfd, evs, MAX_EVENTS, (int)(scan_every / 1000000));
    pthread_mutex_lock(&e->mu);
    if (e->quit) {
      pthread_mutex_unlock(&e->mu);
      break;
    }
    if (e->go && e->counters[C_STATE] == STATE_READY) {
      // start(): the clock starts; every connection fills its pipeline.
      e->counters[C_STATE] = STATE_RUNNING;
      e->sending = 1;
      now = now_ns();
      for (uint32_t i = 0; i < e->conns_n; i++) {
        if (e->udp) udp_start(e, &e->usocks[i], now);
        else if (e->tconns[i].alive) tconn_send(e, &e->tconns[i], e->pipeline, now, i);
      }
    }
    for (int k = 0; k < n; k++) {
      uint64_t idx = evs[k].data.u64;
      if (idx == UINT64_MAX) {
        uint64_t v;
        ssize_t r = read(e->wakefd, &v, sizeof v);
        (void)r;
        continue;
      }
      if (e->udp) udp_event(e, &e->usocks[idx], rbufs);
      else tcp_event(e, idx, evs[k].events, rbuf);
    }
    now = now_ns();
    if (now - last_scan >= scan_every) {
      last_scan = now;
      if (e->udp) udp_scan(e, now);
      else tcp_scan(e, now);
    }
    tally_live(e);
    pthread_mutex_unlock(&e->mu);
  }
  free(rbuf);
  free(rbufs);
  return NULL;
}

// ---------------------------------------------------------------- N-API

// Stops the engine thread, if it runs, and waits for it.
static void stop_thread(engine_t *e) {
  if (!e->thread_started) return;
  pthread_mutex_lock(&e->mu);
  e->quit = 1;
  pthread_mutex_unlock(&e->mu);
  wake(e);
  pthread_join(e->thread, NULL);
  e->thread_started = 0;
}

static void engine_free(engine_t *e) {
  stop_thread(e);
  for (uint32_t i = 0; e->tconns != NULL && i < e->conns_n; i++) {
    if (e->tconns[i].fd >= 0) close(e->tconns[i].fd);
    free(e->tconns[i].sent_at);
  }
  for (uint32_t i = 0; e->usocks != NULL && i < e->conns_n; i++) {
    usock_t *s = &e->usocks[i];
    if (s->fd >= 0) close(s->fd);
    free(s->seq);
    free(s->sent_at);
    free(s->state);
    free(s->bufs);
  }
  free(e->tconns);
  free(e->usocks);
  free(e->period);
  free(e->expected);
  free(e->exp_off);
  free(e->counts);
  if (e->epfd >= 0) close(e->epfd);
  if (e->wakefd >= 0) close(e->wakefd);
  pthread_mutex_destroy(&e->mu);
  free(e);
}

static void finalize(napi_env env, void *data, void *hint) {
  engine_free(data);
}

static int get_u32(napi_env env, napi_value obj, const char *name, uint32_t *out) {
  napi_value v;
  return napi_get_named_property(env, obj, name, &v) == napi_ok && napi_get_value_uint32(env, v, out) == napi_ok;
}

static int get_buffer(napi_env env, napi_value obj, const char *name, void **data, size_t *len) {
  napi_value v;
  bool is;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok || napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  size_t length, offset;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, data, &ab, &offset) != napi_ok) return 0;
  size_t unit = type == napi_uint32_array ? 4 : 1;
  if (type != napi_uint8_array && type != napi_uint32_array) return 0;
  *len = length * unit;
  return 1;
}

static napi_value fail_arg(napi_env env, const char *what) {
  napi_throw_type_error(env, NULL, what);
  return NULL;
}

// create({ udp, address, port, connections, pipeline, size, timeoutMs, bodies, expected, expectedOffsets }):
// starts the engine thread, which connects; poll() says when it is ready.
static napi_value create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], v;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return fail_arg(env, "create(config)");
  napi_value cfg = argv[0];
  uint32_t udp, port, conns, pipeline, size, timeout_ms;
  if (!get_u32(env, cfg, "udp", &udp) || !get_u32(env, cfg, "port", &port) || !get_u32(env, cfg, "connections", &conns) ||
      !get_u32(env, cfg, "pipeline", &pipeline) || !get_u32(env, cfg, "size", &size) || !get_u32(env, cfg, "timeoutMs", &timeout_ms))
    return fail_arg(env, "create: a number is missing");
  char address[64];
  size_t alen;
  CHECK(napi_get_named_property(env, cfg, "address", &v));
  if (napi_get_value_string_utf8(env, v, address, sizeof address, &alen) != napi_ok) return fail_arg(env, "create: address");
  void *bodies, *expected, *offsets;
  size_t bodies_len, expected_len, offsets_len;
  if (!get_buffer(env, cfg, "bodies", &bodies, &bodies_len) || !get_buffer(env, cfg, "expected", &expected, &expected_len) ||
      !get_buffer(env, cfg, "expectedOffsets", &offsets, &offsets_len))
    return fail_arg(env, "create: bodies, expected and expectedOffsets");
  uint32_t body_size = udp ? size - SEQ_DIGITS : size;
  uint32_t variants = (uint32_t)(offsets_len / 4) - 1;
  if (conns == 0 || pipeline == 0 || size <= (udp ? SEQ_DIGITS : 0) || variants == 0 || port == 0 || port > 65535 ||
      bodies_len != (size_t)variants * body_size || ((uint32_t *)offsets)[variants] != expected_len || (udp && size > UDP_BUFFER))
    return fail_arg(env, "create: inconsistent sizes");
  for (uint32_t k = 0; k < variants; k++)
    if (((uint32_t *)offsets)[k] > ((uint32_t *)offsets)[k + 1]) return fail_arg(env, "create: offsets out of order");

  engine_t *e = calloc(1, sizeof *e);
  if (e == NULL) return fail_arg(env, "create: out of memory");
  e->epfd = e->wakefd = -1;
  pthread_mutex_init(&e->mu, NULL);
  e->udp = (int)udp;
  e->conns_n = conns;
  e->pipeline = pipeline;
  e->size = size;
  e->variants = variants;
  e->timeout_ns = (uint64_t)timeout_ms * 1000000ull;
  // A numeric address only (resolved in TypeScript); an IPv6 one may carry its scope (fe80::1%eth0).
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_family = AF_UNSPEC};
  struct addrinfo *found = NULL;
  char service[8];
  snprintf(service, sizeof service, "%u", port);
  if (getaddrinfo(address, service, &hints, &found) != 0 || found == NULL || found->ai_addrlen > sizeof e->addr) {
    if (found != NULL) freeaddrinfo(found);
    engine_free(e);
    return fail_arg(env, "create: address is not an IP address");
  }
  memcpy(&e->addr, found->ai_addr, found->ai_addrlen);
  e->addr_len = found->ai_addrlen;
  e->family = found->ai_family;
  freeaddrinfo(found);
  int ok = 1;
  size_t period = (size_t)variants * body_size;
  e->period = malloc(udp ? period : 2 * period);
  e->expected = malloc(expected_len > 0 ? expected_len : 1);
  e->exp_off = malloc(offsets_len);
  e->counts = calloc(HDR_SLOTS, sizeof *e->counts);
  ok = e->period && e->expected && e->exp_off && e->counts;
  if (ok) {
    memcpy(e->period, bodies, period);
    if (!udp) memcpy(e->period + period, bodies, period);
    memcpy(e->expected, expected, expected_len);
    memcpy(e->exp_off, offsets, offsets_len);
  }
  if (ok && udp) {
    e->usocks = calloc(conns, sizeof *e->usocks);
    ok = e->usocks != NULL;
    for (uint32_t i = 0; ok && i < conns; i++) {
      usock_t *s = &e->usocks[i];
      s->fd = -1;
      s->index = i;
      s->seq = calloc(pipeline, sizeof *s->seq);
      s->sent_at = calloc(pipeline, sizeof *s->sent_at);
      s->state = calloc(pipeline, 1);
      s->bufs = malloc((size_t)pipeline * size);
      ok = s->seq && s->sent_at && s->state && s->bufs;
      // Slot j holds body (j + i) mod variants after its sequence number, as src/bench/udp.ts lays them out.
      for (uint32_t j = 0; ok && j < pipeline; j++)
        memcpy(s->bufs + (size_t)j * size + SEQ_DIGITS, e->period + (size_t)((j + i) % variants) * body_size, body_size);
    }
  } else if (ok) {
    e->tconns = calloc(conns, sizeof *e->tconns);
    ok = e->tconns != NULL;
    for (uint32_t i = 0; ok && i < conns; i++) {
      tconn_t *c = &e->tconns[i];
      c->fd = -1;
      c->first = i % variants;
      c->woff = (uint64_t)c->first * body_size;
      c->sent_at = calloc(pipeline, sizeof *c->sent_at);
      ok = c->sent_at != NULL;
    }
  }
  if (!ok) {
    engine_free(e);
    return fail_arg(env, "create: out of memory");
  }
  e->epfd = epoll_create1(EPOLL_CLOEXEC);
  e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
  int err = 0;
  if (e->epfd < 0 || e->wakefd < 0 || epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wakefd, &ev) < 0)
    err = errno;
  else
    err = pthread_create(&e->thread, NULL, engine_main, e); // returns its error; errno is not set
  if (err != 0) {
    engine_free(e);
    napi_throw_error(env, "UPCASE_ERR_SOCKET", strerror(err));
    return NULL;
  }
  e->thread_started = 1;
  napi_value handle;
  if (napi_create_external(env, e, finalize, NULL, &handle) != napi_ok) {
    engine_free(e);
    napi_throw_error(env, NULL, "upcase native: napi_create_external");
    return NULL;
  }
  return handle;
}

static engine_t *engine_arg(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "missing arguments");
    return NULL;
  }
  void *data;
  if (napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "not an engine");
    return NULL;
  }
  return data;
}

// start(engine): the clock starts; every connection fills its pipeline.
static napi_value start(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  engine_t *e = engine_arg(env, info, 1, argv);
  if (e == NULL) return NULL;
  pthread_mutex_lock(&e->mu);
  e->go = 1;
  pthread_mutex_unlock(&e->mu);
  wake(e);
  return NULL;
}

// stopSending(engine): no new requests; replies to those in flight are still read.
static napi_value stop_sending(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  engine_t *e = engine_arg(env, info, 1, argv);
  if (e == NULL) return NULL;
  pthread_mutex_lock(&e->mu);
  e->sending = 0;
  e->go = 0; // a start() the thread has not acted on yet must not begin sending after this
  pthread_mutex_unlock(&e->mu);
  return NULL;
}

// close(engine): stops the thread and closes every socket; what is still in flight on a live
// connection is counted as timed out (as the JavaScript engine's close() does). Idempotent.
static napi_value close_engine(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  engine_t *e = engine_arg(env, info, 1, argv);
  if (e == NULL) return NULL;
  stop_thread(e);
  pthread_mutex_lock(&e->mu);
  if (!e->closed) {
    e->closed = 1;
    tally_live(e);
    e->counters[C_TIMEOUT] += e->counters[C_IN_FLIGHT];
    for (uint32_t i = 0; i < e->conns_n; i++) {
      int *fd = e->udp ? &e->usocks[i].fd : &e->tconns[i].fd;
      if (*fd >= 0) close(*fd);
      *fd = -1;
      if (e->udp) e->usocks[i].in_flight = 0;
      else e->tconns[i].alive = 0;
    }
    e->counters[C_IN_FLIGHT] = 0;
    e->counters[C_ALIVE] = 0;
    if (e->counters[C_STATE] != STATE_FAILED) e->counters[C_STATE] = STATE_DONE;
  }
  pthread_mutex_unlock(&e->mu);
  return NULL;
}

// poll(engine, counters: Float64Array(counters.length), values: Float64Array, counts: Float64Array):
// fills `counters`, moves the latencies recorded since the last poll into values/counts (the
// bucket's lowest value and its count; the exact min and max in counters) and returns how many.
static napi_value poll_engine(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  engine_t *e = engine_arg(env, info, 4, argv);
  if (e == NULL) return NULL;
  double *out[3];
  size_t len[3];
  for (int k = 0; k < 3; k++) {
    napi_typedarray_type type;
    napi_value ab;
    size_t offset;
    if (napi_get_typedarray_info(env, argv[k + 1], &type, &len[k], (void **)&out[k], &ab, &offset) != napi_ok ||
        type != napi_float64_array)
      return fail_arg(env, "poll: Float64Arrays expected");
  }
  if (len[0] < C_COUNT || len[1] < HDR_SLOTS || len[2] < HDR_SLOTS) return fail_arg(env, "poll: arrays too short");
  uint32_t n = 0;
  pthread_mutex_lock(&e->mu);
  if (e->recorded > 0) {
    for (int i = 0; i < HDR_SLOTS; i++) {
      if (e->counts[i] == 0) continue;
      out[1][n] = (double)slot_value(i);
      out[2][n] = (double)e->counts[i];
      e->counts[i] = 0;
      n++;
    }
  }
  e->counters[C_MIN_NS] = (double)e->min_ns;
  e->counters[C_MAX_NS] = (double)e->max_ns;
  e->recorded = e->min_ns = e->max_ns = 0;
  memcpy(out[0], e->counters, sizeof e->counters);
  int started = e->thread_started;
  pthread_mutex_unlock(&e->mu);
  if (started) {
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(e->thread, &cid) == 0 && clock_gettime(cid, &ts) == 0)
      out[0][C_CPU_NS] = (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
  }
  napi_value result;
  CHECK(napi_create_uint32(env, n, &result));
  return result;
}

// bucketStart(ns): the value poll() reports for a latency of `ns` nanoseconds (its bucket's lowest), for the tests.
static napi_value bucket_start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  double ns;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_double(env, argv[0], &ns) != napi_ok || !(ns >= 0) || ns > 1e18) return fail_arg(env, "bucketStart(ns)");
  CHECK(napi_create_double(env, (double)slot_value(slot_of((uint64_t)ns)), &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
    {"create", NULL, create, NULL, NULL, NULL, napi_default, NULL},
    {"start", NULL, start, NULL, NULL, NULL, napi_default, NULL},
    {"stopSending", NULL, stop_sending, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, close_engine, NULL, NULL, NULL, napi_default, NULL},
    {"poll", NULL, poll_engine, NULL, NULL, NULL, napi_default, NULL},
    {"bucketStart", NULL, bucket_start, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns));
  static const named_int_t counters[] = {
    {"ok", C_OK}, {"mismatch", C_MISMATCH}, {"timeout", C_TIMEOUT}, {"closed", C_CLOSED}, {"unexpected", C_UNEXPECTED},
    {"socket", C_SOCKET}, {"late", C_LATE}, {"sent", C_SENT}, {"bytesSent", C_BYTES_SENT}, {"bytesReceived", C_BYTES_RECEIVED},
    {"inFlight", C_IN_FLIGHT}, {"alive", C_ALIVE}, {"state", C_STATE}, {"errno", C_ERRNO}, {"cpuNs", C_CPU_NS},
    {"minNs", C_MIN_NS}, {"maxNs", C_MAX_NS}, {"length", C_COUNT},
  };
  static const named_int_t states[] = {
    {"connecting", STATE_CONNECTING}, {"ready", STATE_READY}, {"running", STATE_RUNNING}, {"failed", STATE_FAILED}, {"done", STATE_DONE},
  };
  static const named_int_t layout[] = {{"slots", HDR_SLOTS}, {"significantDigits", 3}, {"seqDigits", SEQ_DIGITS}};
  if (!export_named_ints(env, exports, "counters", counters, sizeof counters / sizeof counters[0]) ||
      !export_named_ints(env, exports, "states", states, sizeof states / sizeof states[0]) ||
      !export_named_ints(env, exports, "layout", layout, sizeof layout / sizeof layout[0])) {
    napi_throw_error(env, NULL, "upcase native: export_named_ints");
    return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
