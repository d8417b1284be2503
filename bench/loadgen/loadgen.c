/*
 * loadgen: an independent load generator for uppercase echo servers, used to
 * cross-check `upcase bench`. Single-threaded, epoll, nonblocking; every reply
 * is compared with the expected uppercase.
 *
 * Build: cc -O2 -o loadgen loadgen.c
 *
 *   loadgen tcp-rr -p PORT [-h HOST] -c CONNS -P PIPELINE -s SIZE -d SEC [-w WARMUP]
 *       TCP request/response: CONNS connections, PIPELINE requests in flight each.
 *   loadgen udp-rr -p PORT -c SOCKETS -P INFLIGHT -s SIZE -d SEC [-w WARMUP] [-t TIMEOUT]
 *       UDP: each datagram starts with a 10-digit sequence number; no reply within TIMEOUT is an error.
 *   loadgen bulk -p PORT -B BYTES [--pattern FILE --expect FILE] [-d MAXSEC]
 *       One connection streams BYTES (the pattern repeated), half-closes, reads to EOF.
 *   loadgen conn -p PORT -c CONCURRENCY -s SIZE -d SEC [-w WARMUP]
 *       One connection per request: connect, write, shutdown(SHUT_WR), read to EOF, close.
 *   loadgen idle -p PORT -n CONNS -s SIZE [-d MAXSEC] [-H HOLDSEC]
 *       Opens CONNS connections, each sends one request and reads its reply, then keeps them
 *       all open: prints a "ready" line, and closes them when stdin closes (or after HOLDSEC).
 *
 * Output: one JSON object on stdout (idle: a "ready" object first). Latency percentiles are
 * from a histogram of 1 µs buckets up to 1 s. Exit 0, or 1 on a setup failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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

#define SEQ_DIGITS 10
#define HIST_BUCKETS 1000000 /* 1 µs each, up to 1 s */
#define MAX_EVENTS 512
#define UDP_BATCH 64

static const char *host = "127.0.0.1";
static int port = 12000, conns_n = 64, pipeline = 1, size = 64, nconns = 1000;
static double duration = 5, warmup = 1, timeout_s = 1, hold = 60;
static long long bulk_bytes = 1LL << 30;
static const char *pattern_file, *expect_file;
static struct sockaddr_in addr;
static int ep;

static uint32_t *hist;
static uint64_t hist_count, hist_max;
static int recording;
static unsigned char *expected; /* the reply to every request (udp-rr: after the sequence number) */
static uint64_t ok_count, err_count, unexpected_count;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void record(uint64_t ns) {
  if (!recording) return;
  uint64_t us = ns / 1000;
  hist[us < HIST_BUCKETS ? us : HIST_BUCKETS - 1]++;
  hist_count++;
  if (ns > hist_max) hist_max = ns;
}

static double percentile(double p) {
  if (hist_count == 0) return 0;
  uint64_t want = (uint64_t)(p / 100.0 * (double)hist_count);
  if (want == 0) want = 1;
  uint64_t seen = 0;
  for (int i = 0; i < HIST_BUCKETS; i++) {
    seen += hist[i];
    if (seen >= want) return i + 0.5;
  }
  return HIST_BUCKETS;
}

static void print_latency(void) {
  printf("\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f", percentile(50), percentile(90),
         percentile(99), percentile(99.9), hist_max / 1000.0);
}

static void fail(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void fill_payload(unsigned char *p, int n, int offset) {
  static const char text[] = "the quick brown fox jumps over the lazy dog 0123456789, THE END. ";
  for (int i = 0; i < n; i++) p[i] = (unsigned char)text[(i + offset) % (sizeof text - 1)];
}

static void upcase(unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned)(p[i] - 'a') < 26u) p[i] ^= 0x20;
}

static int tcp_socket(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static void ep_add(int fd, unsigned events, uint64_t data) {
  struct epoll_event ev = {.events = events, .data.u64 = data};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) fail("epoll_ctl");
}

static void ep_mod(int fd, unsigned events, uint64_t data) {
  struct epoll_event ev = {.events = events, .data.u64 = data};
  epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static int wait_connected(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  if (poll(&p, 1, 5000) != 1) return -1;
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  errno = err;
  return err == 0 ? 0 : -1;
}

/* Once a nonblocking connect has finished: 0 when it worked and the whole request went out. */
static int send_when_connected(int fd, const unsigned char *req) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err == 0 && write(fd, req, (size_t)size) == size ? 0 : -1;
}

static void big_buffers(int fd) {
  int sz = 4 * 1024 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
}

/* One request of `size` bytes; `expected` becomes its uppercase. */
static unsigned char *request_and_expected(void) {
  unsigned char *req = malloc((size_t)size);
  fill_payload(req, size, 0);
  expected = malloc((size_t)size);
  memcpy(expected, req, (size_t)size);
  upcase(expected, (size_t)size);
  return req;
}

/* The measured window of a timed mode: `warmup` seconds, then `duration` seconds recorded. */
struct window {
  uint64_t t_rec, t_end, ok_start, ok_end;
  double cpu0, cpu1;
  int running, started;
};

static struct window window_from(uint64_t t0) {
  uint64_t t_rec = t0 + (uint64_t)(warmup * 1e9);
  return (struct window){.t_rec = t_rec, .t_end = t_rec + (uint64_t)(duration * 1e9), .running = 1};
}

/* Starts and stops the recording as `now` passes the window's edges; 1 at the moment it stops. */
static int window_tick(struct window *w, uint64_t now) {
  if (!w->started && now >= w->t_rec) {
    w->started = 1;
    recording = 1;
    w->ok_start = ok_count;
    w->cpu0 = cpu_seconds();
  }
  if (w->running && now >= w->t_end) {
    w->running = 0;
    recording = 0;
    w->ok_end = ok_count;
    w->cpu1 = cpu_seconds();
    return 1;
  }
  return 0;
}

static double cpu_percent(const struct window *w) {
  return (w->cpu1 - w->cpu0) / duration * 100;
}

/* ---------------------------------------------------------------- tcp-rr */

struct tconn {
  int fd, alive, bad, want_out; /* want_out: EPOLLOUT is registered */
  uint64_t sent, answered, owed, woff, roff;
  uint64_t *sent_at;
};

static unsigned char *sendbuf;

static void tcp_write(struct tconn *c, uint64_t idx) {
  while (c->owed > 0) {
    size_t len = (size_t)((uint64_t)pipeline * size - c->woff);
    if (len > c->owed) len = (size_t)c->owed;
    ssize_t n = write(c->fd, sendbuf + c->woff, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (!c->want_out) ep_mod(c->fd, EPOLLIN | EPOLLOUT, idx);
        c->want_out = 1;
        return;
      }
      c->alive = 0;
      err_count += c->sent - c->answered;
      return;
    }
    c->owed -= (uint64_t)n;
    c->woff = (c->woff + (uint64_t)n) % (uint64_t)size;
  }
  if (c->want_out) ep_mod(c->fd, EPOLLIN, idx);
  c->want_out = 0;
}

static void tcp_send(struct tconn *c, uint64_t k, uint64_t now, uint64_t idx) {
  for (uint64_t j = 0; j < k; j++) c->sent_at[(c->sent + j) % (uint64_t)pipeline] = now;
  c->sent += k;
  c->owed += k * (uint64_t)size;
  tcp_write(c, idx);
}

static int mode_tcp_rr(void) {
  sendbuf = malloc((size_t)pipeline * size);
  expected = malloc((size_t)size);
  for (int i = 0; i < pipeline; i++) fill_payload(sendbuf + (size_t)i * size, size, 0);
  memcpy(expected, sendbuf, (size_t)size);
  upcase(expected, (size_t)size);
  struct tconn *cs = calloc((size_t)conns_n, sizeof *cs);
  for (int i = 0; i < conns_n; i++) {
    cs[i].fd = tcp_socket();
    if (cs[i].fd < 0 || wait_connected(cs[i].fd) < 0) fail("connect");
    cs[i].alive = 1;
    cs[i].sent_at = calloc((size_t)pipeline, sizeof(uint64_t));
    ep_add(cs[i].fd, EPOLLIN, (uint64_t)i);
  }
  static unsigned char rbuf[256 * 1024];
  struct epoll_event evs[MAX_EVENTS];
  uint64_t t0 = now_ns(), drain_end = 0;
  struct window w = window_from(t0);
  for (int i = 0; i < conns_n; i++) tcp_send(&cs[i], (uint64_t)pipeline, t0, (uint64_t)i);
  for (;;) {
    uint64_t now = now_ns();
    if (window_tick(&w, now)) drain_end = now + 2000000000ull;
    if (!w.running) {
      uint64_t inflight = 0;
      for (int i = 0; i < conns_n; i++)
        if (cs[i].alive) inflight += cs[i].sent - cs[i].answered;
      if (inflight == 0 || now >= drain_end) {
        err_count += inflight;
        break;
      }
    }
    int n = epoll_wait(ep, evs, MAX_EVENTS, 10);
    now = now_ns();
    for (int e = 0; e < n; e++) {
      uint64_t idx = evs[e].data.u64;
      struct tconn *c = &cs[idx];
      if (!c->alive) continue;
      if (evs[e].events & EPOLLOUT) tcp_write(c, idx);
      if (!(evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      ssize_t r = read(c->fd, rbuf, sizeof rbuf);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {
        c->alive = 0;
        err_count += c->sent - c->answered;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        continue;
      }
      uint64_t done = 0;
      size_t pos = 0;
      while (pos < (size_t)r) {
        if (c->answered == c->sent) {
          unexpected_count++;
          break;
        }
        size_t take = (size_t)((uint64_t)size - c->roff);
        if (take > (size_t)r - pos) take = (size_t)r - pos;
        if (!c->bad && memcmp(rbuf + pos, expected + c->roff, take) != 0) c->bad = 1;
        pos += take;
        c->roff += take;
        if (c->roff == (uint64_t)size) {
          if (c->bad) err_count++;
          else {
            ok_count++;
            record(now - c->sent_at[c->answered % (uint64_t)pipeline]);
          }
          c->bad = 0;
          c->roff = 0;
          c->answered++;
          done++;
        }
      }
      if (w.running && done > 0) tcp_send(c, done, now, idx);
    }
  }
  double secs = duration;
  uint64_t reqs = w.ok_end - w.ok_start;
  printf("{\"mode\":\"tcp-rr\",\"connections\":%d,\"pipeline\":%d,\"size\":%d,\"seconds\":%.3f,\"requests\":%llu,\"rps\":%.1f,"
         "\"mbps\":%.3f,\"errors\":%llu,\"unexpected\":%llu,\"cpu_pct\":%.1f,",
         conns_n, pipeline, size, secs, (unsigned long long)reqs, reqs / secs, reqs * (double)size / secs / 1e6,
         (unsigned long long)err_count, (unsigned long long)unexpected_count, cpu_percent(&w));
  print_latency();
  printf("}\n");
  return 0;
}

/* ---------------------------------------------------------------- udp-rr */

struct usock {
  int fd;
  unsigned char *bufs; /* pipeline × size */
  uint64_t *seq, *sent_at;
  unsigned char *inflight;
};

static void write_seq(unsigned char *p, uint64_t seq) {
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

/* Sends request `j` of socket `s` again, with its next sequence number; returns its bytes. */
static unsigned char *udp_next(struct usock *s, int j, uint64_t now) {
  unsigned char *b = s->bufs + (size_t)j * size;
  s->seq[j] += (uint64_t)pipeline;
  write_seq(b, s->seq[j]);
  s->sent_at[j] = now;
  s->inflight[j] = 1;
  return b;
}

static int mode_udp_rr(void) {
  if (size <= SEQ_DIGITS) {
    fprintf(stderr, "loadgen: udp-rr needs -s > %d\n", SEQ_DIGITS);
    return 2;
  }
  free(request_and_expected());
  struct usock *ss = calloc((size_t)conns_n, sizeof *ss);
  uint64_t timeouts = 0, late = 0, mismatches = 0;
  uint64_t t0 = now_ns();
  for (int i = 0; i < conns_n; i++) {
    struct usock *s = &ss[i];
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    big_buffers(s->fd);
    if (connect(s->fd, (struct sockaddr *)&addr, sizeof addr) < 0) fail("connect udp");
    s->bufs = malloc((size_t)pipeline * size);
    s->seq = calloc((size_t)pipeline, sizeof(uint64_t));
    s->sent_at = calloc((size_t)pipeline, sizeof(uint64_t));
    s->inflight = calloc((size_t)pipeline, 1);
    ep_add(s->fd, EPOLLIN, (uint64_t)i);
    for (int j = 0; j < pipeline; j++) {
      unsigned char *b = s->bufs + (size_t)j * size;
      fill_payload(b, size, 0);
      s->seq[j] = (uint64_t)j;
      write_seq(b, (uint64_t)j);
      s->sent_at[j] = t0;
      s->inflight[j] = 1;
      send(s->fd, b, (size_t)size, 0);
    }
  }
  static unsigned char rbufs[UDP_BATCH][65536];
  struct mmsghdr rmsgs[UDP_BATCH], smsgs[UDP_BATCH];
  struct iovec riov[UDP_BATCH], siov[UDP_BATCH];
  struct epoll_event evs[MAX_EVENTS];
  struct window w = window_from(t0);
  uint64_t timeout_ns = (uint64_t)(timeout_s * 1e9), last_scan = t0, drain_end = 0;
  for (;;) {
    uint64_t now = now_ns();
    if (window_tick(&w, now)) drain_end = now + timeout_ns;
    if (now - last_scan > 20000000ull || !w.running) {
      last_scan = now;
      uint64_t inflight = 0;
      for (int i = 0; i < conns_n; i++) {
        struct usock *s = &ss[i];
        for (int j = 0; j < pipeline; j++) {
          if (!s->inflight[j]) continue;
          if (now - s->sent_at[j] > timeout_ns) {
            timeouts++;
            s->inflight[j] = 0;
            if (w.running) send(s->fd, udp_next(s, j, now), (size_t)size, 0);
          } else {
            inflight++;
          }
        }
      }
      if (!w.running && (inflight == 0 || now > drain_end)) {
        timeouts += inflight;
        break;
      }
    }
    int n = epoll_wait(ep, evs, MAX_EVENTS, 10);
    for (int e = 0; e < n; e++) {
      struct usock *s = &ss[evs[e].data.u64];
      for (int round = 0; round < 8; round++) {
        for (int k = 0; k < UDP_BATCH; k++) {
          riov[k].iov_base = rbufs[k];
          riov[k].iov_len = sizeof rbufs[k];
          memset(&rmsgs[k].msg_hdr, 0, sizeof rmsgs[k].msg_hdr);
          rmsgs[k].msg_hdr.msg_iov = &riov[k];
          rmsgs[k].msg_hdr.msg_iovlen = 1;
        }
        int m = recvmmsg(s->fd, rmsgs, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (m <= 0) break;
        now = now_ns();
        int ns = 0;
        for (int k = 0; k < m; k++) {
          size_t len = rmsgs[k].msg_len;
          int64_t seq = read_seq(rbufs[k], len);
          if (seq < 0) {
            unexpected_count++;
            continue;
          }
          int j = (int)((uint64_t)seq % (uint64_t)pipeline);
          if (s->seq[j] != (uint64_t)seq || !s->inflight[j]) {
            if ((uint64_t)seq <= s->seq[j]) late++;
            else unexpected_count++;
            continue;
          }
          s->inflight[j] = 0;
          if (len == (size_t)size && memcmp(rbufs[k] + SEQ_DIGITS, expected + SEQ_DIGITS, (size_t)size - SEQ_DIGITS) == 0) {
            ok_count++;
            record(now - s->sent_at[j]);
          } else {
            mismatches++;
          }
          if (w.running) {
            siov[ns].iov_base = udp_next(s, j, now);
            siov[ns].iov_len = (size_t)size;
            memset(&smsgs[ns].msg_hdr, 0, sizeof smsgs[ns].msg_hdr);
            smsgs[ns].msg_hdr.msg_iov = &siov[ns];
            smsgs[ns].msg_hdr.msg_iovlen = 1;
            ns++;
          }
        }
        int sent = 0;
        while (sent < ns) {
          int r = sendmmsg(s->fd, smsgs + sent, (unsigned)(ns - sent), 0);
          if (r <= 0) break; /* unsent requests time out and are counted */
          sent += r;
        }
        if (m < UDP_BATCH) break;
      }
    }
  }
  double secs = duration;
  uint64_t reqs = w.ok_end - w.ok_start;
  printf("{\"mode\":\"udp-rr\",\"sockets\":%d,\"pipeline\":%d,\"size\":%d,\"seconds\":%.3f,\"requests\":%llu,\"rps\":%.1f,"
         "\"mbps\":%.3f,\"errors\":%llu,\"timeouts\":%llu,\"mismatches\":%llu,\"late\":%llu,\"unexpected\":%llu,\"cpu_pct\":%.1f,",
         conns_n, pipeline, size, secs, (unsigned long long)reqs, reqs / secs, reqs * (double)size / secs / 1e6,
         (unsigned long long)(timeouts + mismatches + unexpected_count), (unsigned long long)timeouts,
         (unsigned long long)mismatches, (unsigned long long)late, (unsigned long long)unexpected_count, cpu_percent(&w));
  print_latency();
  printf("}\n");
  return 0;
}

/* ---------------------------------------------------------------- bulk */

static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) fail(path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *p = malloc((size_t)n);
  if (fread(p, 1, (size_t)n, f) != (size_t)n) fail(path);
  fclose(f);
  *len = (size_t)n;
  return p;
}

static int mode_bulk(void) {
  size_t plen, elen;
  unsigned char *pat, *exp;
  if (pattern_file != NULL) {
    pat = read_file(pattern_file, &plen);
    exp = read_file(expect_file, &elen);
  } else {
    plen = elen = 64 * 1024;
    pat = malloc(plen);
    fill_payload(pat, (int)plen, 0);
    exp = malloc(elen);
    memcpy(exp, pat, elen);
    upcase(exp, elen);
  }
  uint64_t reps = ((uint64_t)bulk_bytes + plen - 1) / plen;
  uint64_t total_out = reps * plen, total_in = reps * elen, sent = 0, recvd = 0, first_bad = UINT64_MAX;
  int fd = tcp_socket();
  if (fd < 0 || wait_connected(fd) < 0) fail("connect");
  big_buffers(fd);
  ep_add(fd, EPOLLIN | EPOLLOUT, 0);
  static unsigned char rbuf[1024 * 1024];
  struct epoll_event evs[4];
  uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(duration * 1e9);
  double cpu0 = cpu_seconds();
  int eof = 0, timed_out = 0, wr_open = 1;
  while (!eof) {
    if (now_ns() > deadline) {
      timed_out = 1;
      break;
    }
    int n = epoll_wait(ep, evs, 4, 100);
    for (int e = 0; e < n; e++) {
      if ((evs[e].events & EPOLLOUT) && wr_open) {
        while (sent < total_out) {
          size_t off = (size_t)(sent % plen);
          ssize_t w = write(fd, pat + off, plen - off);
          if (w < 0) break;
          sent += (uint64_t)w;
        }
        if (sent == total_out) {
          shutdown(fd, SHUT_WR);
          wr_open = 0;
          ep_mod(fd, EPOLLIN, 0);
        }
      }
      if (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (int round = 0; round < 4; round++) {
          ssize_t r = read(fd, rbuf, sizeof rbuf);
          if (r < 0) break;
          if (r == 0) {
            eof = 1;
            break;
          }
          /* Compare with the expected stream (the uppercased pattern, repeated). */
          size_t pos = 0;
          while (pos < (size_t)r && first_bad == UINT64_MAX) {
            if (recvd + pos >= total_in) {
              first_bad = recvd + pos;
              break;
            }
            size_t off = (size_t)((recvd + pos) % elen);
            size_t take = elen - off;
            if (take > (size_t)r - pos) take = (size_t)r - pos;
            if (memcmp(rbuf + pos, exp + off, take) != 0) {
              size_t k = 0;
              while (rbuf[pos + k] == exp[off + k]) k++;
              first_bad = recvd + pos + k;
            }
            pos += take;
          }
          recvd += (uint64_t)r;
        }
      }
    }
  }
  double secs = (now_ns() - t0) / 1e9;
  double cpu = cpu_seconds() - cpu0;
  int correct = !timed_out && recvd == total_in && first_bad == UINT64_MAX;
  printf("{\"mode\":\"bulk\",\"bytes\":%llu,\"received\":%llu,\"expected\":%llu,\"seconds\":%.3f,\"mbps\":%.1f,\"correct\":%s,"
         "\"first_wrong_byte\":%lld,\"timed_out\":%s,\"cpu_pct\":%.1f}\n",
         (unsigned long long)sent, (unsigned long long)recvd, (unsigned long long)total_in, secs, sent / secs / 1e6,
         correct ? "true" : "false", first_bad == UINT64_MAX ? -1LL : (long long)first_bad, timed_out ? "true" : "false",
         cpu / secs * 100);
  close(fd);
  return 0;
}

/* ---------------------------------------------------------------- conn */

struct cslot {
  int fd, state; /* 0 idle, 1 connecting, 2 reading */
  uint64_t start;
  size_t got;
  int bad;
};

static int mode_conn(void) {
  unsigned char *req = request_and_expected();
  struct cslot *cs = calloc((size_t)conns_n, sizeof *cs);
  static unsigned char rbuf[65536];
  struct epoll_event evs[MAX_EVENTS];
  struct window w = window_from(now_ns());
  uint64_t connect_errors = 0;
  int active = 0;
  for (;;) {
    uint64_t now = now_ns();
    window_tick(&w, now);
    if (!w.running && (active == 0 || now > w.t_end + 3000000000ull)) break;
    if (w.running) {
      for (int i = 0; i < conns_n; i++) {
        if (cs[i].state != 0) continue;
        int fd = tcp_socket();
        if (fd < 0) {
          connect_errors++;
          continue;
        }
        cs[i] = (struct cslot){.fd = fd, .state = 1, .start = now};
        ep_add(fd, EPOLLOUT, (uint64_t)i);
        active++;
      }
    }
    int n = epoll_wait(ep, evs, MAX_EVENTS, 10);
    now = now_ns();
    for (int e = 0; e < n; e++) {
      int i = (int)evs[e].data.u64;
      struct cslot *c = &cs[i];
      if (c->state == 1) {
        if (send_when_connected(c->fd, req) < 0) {
          connect_errors++;
          close(c->fd);
          c->state = 0;
          active--;
          continue;
        }
        shutdown(c->fd, SHUT_WR);
        c->state = 2;
        ep_mod(c->fd, EPOLLIN, (uint64_t)i);
        continue;
      }
      ssize_t r = read(c->fd, rbuf, sizeof rbuf);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r > 0) {
        if (c->got + (size_t)r > (size_t)size || memcmp(rbuf, expected + c->got, (size_t)r) != 0) c->bad = 1;
        c->got += (size_t)r;
        continue;
      }
      /* EOF or error: the conversation is over. */
      if (r == 0 && !c->bad && c->got == (size_t)size) {
        ok_count++;
        record(now - c->start);
      } else {
        err_count++;
      }
      close(c->fd);
      c->state = 0;
      active--;
    }
  }
  double secs = duration;
  uint64_t reqs = w.ok_end - w.ok_start;
  printf("{\"mode\":\"conn\",\"concurrency\":%d,\"size\":%d,\"seconds\":%.3f,\"requests\":%llu,\"rps\":%.1f,\"errors\":%llu,"
         "\"connect_errors\":%llu,\"cpu_pct\":%.1f,",
         conns_n, size, secs, (unsigned long long)reqs, reqs / secs, (unsigned long long)err_count,
         (unsigned long long)connect_errors, cpu_percent(&w));
  print_latency();
  printf("}\n");
  return 0;
}

/* ---------------------------------------------------------------- idle */

/* Reads an open idle connection that polled readable: 1 when the server closed it (now closed here too). */
static int closed_by_server(int fd, unsigned char *buf, size_t cap) {
  ssize_t r = read(fd, buf, cap);
  if (r == 0 || (r < 0 && errno != EAGAIN)) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    return 1;
  }
  return 0;
}

static int mode_idle(void) {
  unsigned char *req = request_and_expected();
  int *fds = malloc(sizeof(int) * (size_t)nconns);
  size_t *got = calloc((size_t)nconns, sizeof(size_t));
  unsigned char *state = calloc((size_t)nconns, 1); /* 0 new, 1 connecting, 2 reading, 3 open, 4 failed */
  static unsigned char rbuf[65536];
  struct epoll_event evs[MAX_EVENTS];
  uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(duration * 1e9);
  int next = 0, pending = 0, open_n = 0, failed = 0, closed_later = 0;
  const int window = 256;
  while (open_n + failed < nconns && now_ns() < deadline) {
    while (next < nconns && pending < window) {
      int fd = tcp_socket();
      if (fd < 0) {
        state[next] = 4;
        failed++;
        next++;
        continue;
      }
      fds[next] = fd;
      state[next] = 1;
      ep_add(fd, EPOLLOUT, (uint64_t)next);
      next++;
      pending++;
    }
    int n = epoll_wait(ep, evs, MAX_EVENTS, 10);
    for (int e = 0; e < n; e++) {
      int i = (int)evs[e].data.u64;
      if (state[i] == 1) {
        if (send_when_connected(fds[i], req) < 0) {
          state[i] = 4;
          failed++;
          pending--;
          close(fds[i]);
          continue;
        }
        state[i] = 2;
        ep_mod(fds[i], EPOLLIN, (uint64_t)i);
      } else if (state[i] == 2) {
        ssize_t r = read(fds[i], rbuf, sizeof rbuf);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (r <= 0 || got[i] + (size_t)r > (size_t)size || memcmp(rbuf, expected + got[i], (size_t)r) != 0) {
          state[i] = 4;
          failed++;
          pending--;
          close(fds[i]);
          continue;
        }
        got[i] += (size_t)r;
        if (got[i] == (size_t)size) {
          state[i] = 3;
          open_n++;
          pending--;
        }
      } else if (state[i] == 3 && closed_by_server(fds[i], rbuf, sizeof rbuf)) {
        state[i] = 4;
        open_n--;
        closed_later++;
      }
    }
  }
  double secs = (now_ns() - t0) / 1e9;
  printf("{\"ready\":true,\"open\":%d,\"failed\":%d,\"seconds\":%.3f}\n", open_n, failed + (nconns - next), secs);
  fflush(stdout);
  /* Hold them open until stdin closes (or the hold time ends), watching for closes. */
  uint64_t hold_end = now_ns() + (uint64_t)(hold * 1e9);
  ep_add(0, EPOLLIN, UINT64_MAX);
  int done = 0;
  while (!done && now_ns() < hold_end) {
    int n = epoll_wait(ep, evs, MAX_EVENTS, 100);
    for (int e = 0; e < n; e++) {
      if (evs[e].data.u64 == UINT64_MAX) {
        char c[64];
        if (read(0, c, sizeof c) <= 0) done = 1;
        continue;
      }
      int i = (int)evs[e].data.u64;
      if (state[i] == 3 && closed_by_server(fds[i], rbuf, sizeof rbuf)) {
        state[i] = 4;
        open_n--;
        closed_later++;
      }
    }
  }
  printf("{\"mode\":\"idle\",\"requested\":%d,\"open\":%d,\"failed\":%d,\"closed_by_server\":%d}\n", nconns, open_n,
         failed + (nconns - next), closed_later);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: loadgen tcp-rr|udp-rr|bulk|conn|idle [options] (see the comment at the top of loadgen.c)\n");
    return 2;
  }
  const char *mode = argv[1];
  static struct option longs[] = {{"pattern", required_argument, 0, 1}, {"expect", required_argument, 0, 2}, {0, 0, 0, 0}};
  int opt;
  optind = 2;
  while ((opt = getopt_long(argc, argv, "h:p:c:P:s:d:w:t:B:n:H:", longs, NULL)) != -1) {
    switch (opt) {
      case 'h': host = optarg; break;
      case 'p': port = atoi(optarg); break;
      case 'c': conns_n = atoi(optarg); break;
      case 'P': pipeline = atoi(optarg); break;
      case 's': size = atoi(optarg); break;
      case 'd': duration = atof(optarg); break;
      case 'w': warmup = atof(optarg); break;
      case 't': timeout_s = atof(optarg); break;
      case 'B': bulk_bytes = atoll(optarg); break;
      case 'n': nconns = atoi(optarg); break;
      case 'H': hold = atof(optarg); break;
      case 1: pattern_file = optarg; break;
      case 2: expect_file = optarg; break;
      default: return 2;
    }
  }
  if (conns_n < 1 || pipeline < 1 || size < 1 || duration <= 0 || (pattern_file != NULL) != (expect_file != NULL)) {
    fprintf(stderr, "loadgen: bad arguments\n");
    return 2;
  }
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "loadgen: -h takes an IPv4 address\n");
    return 2;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  hist = calloc(HIST_BUCKETS, sizeof *hist);
  ep = epoll_create1(0);
  if (strcmp(mode, "tcp-rr") == 0) return mode_tcp_rr();
  if (strcmp(mode, "udp-rr") == 0) return mode_udp_rr();
  if (strcmp(mode, "bulk") == 0) return mode_bulk();
  if (strcmp(mode, "conn") == 0) return mode_conn();
  if (strcmp(mode, "idle") == 0) return mode_idle();
  fprintf(stderr, "loadgen: unknown mode %s\n", mode);
  return 2;
}
