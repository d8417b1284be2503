/*
 * epoll-upcase: the machine's ceiling for the upcase benchmarks.
 *
 * A single-threaded, level-triggered epoll server answering TCP and UDP on one
 * port with the ASCII uppercase of what it reads (bytes a-z become A-Z, every
 * other byte passes through: no Unicode). TCP: each read is answered with one
 * write; a reply the kernel cannot take yet is kept and reading stops until it
 * is sent (backpressure); after the client's FIN the rest is sent and the
 * connection closed. UDP: recvmmsg/sendmmsg in batches of 64.
 *
 * Build: cc -O2 -o epoll-upcase epoll-upcase.c
 * Usage: epoll-upcase PORT [HOST]      (HOST default 127.0.0.1)
 * Prints "ready PORT" on stdout once listening. SIGTERM/SIGINT end it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BUF (256 * 1024)
#define UDP_BATCH 64
#define UDP_MAX 65536
#define MAX_EVENTS 256

struct conn {
  char *pending; /* reply bytes not yet written */
  size_t len, off;
};

static struct conn *conns;
static int max_fds;
static int ep;
static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static void upcase(unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if ((unsigned)(p[i] - 'a') < 26u) p[i] ^= 0x20;
  }
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void close_conn(int fd) {
  free(conns[fd].pending);
  memset(&conns[fd], 0, sizeof conns[fd]);
  close(fd);
}

static void set_events(int fd, unsigned events) {
  struct epoll_event ev = {.events = events, .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* Writes what is pending; returns 1 when all is written, 0 if the kernel is full, -1 on error. */
static int flush_conn(int fd) {
  struct conn *c = &conns[fd];
  while (c->off < c->len) {
    ssize_t n = write(fd, c->pending + c->off, c->len - c->off);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 0;
      return -1;
    }
    c->off += (size_t)n;
  }
  free(c->pending);
  c->pending = NULL;
  c->len = c->off = 0;
  return 1;
}

static void on_tcp(int fd, unsigned events, unsigned char *buf) {
  struct conn *c = &conns[fd];
  if (events & EPOLLOUT) {
    int r = flush_conn(fd);
    if (r < 0) return close_conn(fd);
    if (r == 0) return;
    set_events(fd, EPOLLIN);
    return;
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  ssize_t n = read(fd, buf, READ_BUF);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    return close_conn(fd);
  }
  if (n == 0) return close_conn(fd); /* nothing pending: we only read while all is written */
  upcase(buf, (size_t)n);
  size_t off = 0;
  while (off < (size_t)n) {
    ssize_t w = write(fd, buf + off, (size_t)n - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return close_conn(fd);
      /* The client is not reading fast enough: keep the rest, stop reading. */
      c->len = (size_t)n - off;
      c->off = 0;
      c->pending = malloc(c->len);
      if (c->pending == NULL) return close_conn(fd);
      memcpy(c->pending, buf + off, c->len);
      set_events(fd, EPOLLOUT);
      return;
    }
    off += (size_t)w;
  }
}

static void on_udp(int fd) {
  static unsigned char bufs[UDP_BATCH][UDP_MAX];
  static struct mmsghdr msgs[UDP_BATCH];
  static struct iovec iov[UDP_BATCH];
  static struct sockaddr_storage addrs[UDP_BATCH];
  for (int round = 0; round < 16; round++) {
    for (int i = 0; i < UDP_BATCH; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = UDP_MAX;
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &addrs[i];
      msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
    }
    int n = recvmmsg(fd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return;
    for (int i = 0; i < n; i++) {
      upcase(bufs[i], msgs[i].msg_len);
      iov[i].iov_len = msgs[i].msg_len;
    }
    int sent = 0;
    while (sent < n) {
      int m = sendmmsg(fd, msgs + sent, (unsigned)(n - sent), 0);
      if (m <= 0) break; /* a full send buffer drops replies, as UDP may */
      sent += m;
    }
    if (n < UDP_BATCH) return;
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [HOST]\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  const char *host = argc > 2 ? argv[2] : "127.0.0.1";
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  max_fds = (int)rl.rlim_cur;
  conns = calloc((size_t)max_fds, sizeof *conns);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);

  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("inet_pton");
  int one = 1;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind tcp");
  if (listen(lfd, 4096) < 0) die("listen");
  int ufd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (bind(ufd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind udp");
  int sz = 4 * 1024 * 1024;
  setsockopt(ufd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  setsockopt(ufd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);

  ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.fd = ufd;
  epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ev);
  printf("ready %d\n", port);
  fflush(stdout);

  static unsigned char buf[READ_BUF];
  struct epoll_event events[MAX_EVENTS];
  while (!stop) {
    int n = epoll_wait(ep, events, MAX_EVENTS, 500);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
          if (cfd < 0) break;
          if (cfd >= max_fds) {
            close(cfd);
            continue;
          }
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
          epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
        }
      } else if (fd == ufd) {
        on_udp(ufd);
      } else {
        on_tcp(fd, events[i].events, buf);
      }
    }
  }
  return 0;
}
