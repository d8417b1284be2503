// Optional native TCP transport for upcase: serves accepted connections
// without Node's stream layer. Linux only; anywhere else the build is skipped
// and upcase serves TCP with net.Socket streams (src/tcp/connection.ts).
//
// TypeScript keeps every decision that is made once per connection: it accepts
// (node:net), applies maxConnections, PROXY protocol and logging, then hands the
// socket over (adopt: the fd is duplicated and the net.Socket destroyed before it
// has read anything, or after a PROXY header with the bytes it read after it).
// From there this file follows the connection table of docs/protocol.md ("A TCP
// connection, rule by rule"), as src/tcp/connection.ts does, and passes the same
// contract suite (test/tcp/contract.test.ts):
//  - each read is answered with its uppercase (native/codec.c) in one write;
//  - a reply the kernel cannot take yet is kept, and reading stops until it is
//    written (backpressure: at most one reply is held per connection);
//  - after the peer's FIN, the held-back bytes and anything owed are sent, then
//    the connection is closed;
//  - the idle timeout (no read, no write progress) closes it; the write timeout
//    (bytes owed that the kernel refused, for that long without a break: armed in
//    send_reply when send() leaves bytes over, cleared in on_writable once they
//    are all sent) resets it;
//  - errors close only their own connection.
// JavaScript hears of a connection again only when it is closed (onClose).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "codec.h"
#include "codec_napi.h"
#include "napi_check.h"
#include "napi_constants.h"

#define READ_SIZE 65536
// Reads per readable event before yielding to the rest of the event loop.
#define MAX_READS_PER_EVENT 16
// Fairness (docs/protocol.md), as src/tcp/turn.ts for the stream transport: the connections
// of a server answer together for at most this long in one turn of the event loop; the rest
// wait for the next turn (node:net accepts one connection per turn, so long turns also starve
// accepts). A read of fewer than SMALL_CHUNK bytes never waits: an interactive client's request.
#define TURN_BUDGET_NS (5 * 1000 * 1000)
#define SMALL_CHUNK 4096

// Why a connection closed (the `reason` passed to onClose; exported as `closeReasons`,
// the close reasons of docs/protocol.md).
enum { CLOSE_END = 0, CLOSE_IDLE = 1, CLOSE_STALL = 2, CLOSE_ERROR = 3, CLOSE_DESTROYED = 4 };
// Counters shared with JavaScript (a Float64Array), read at scrape time; exported as `counters`.
// Timeouts are counted here, before the close, as src/tcp/connection.ts counts them.
enum { COUNTER_BYTES_IN = 0, COUNTER_BYTES_OUT = 1, COUNTER_IDLE_TIMEOUTS = 2, COUNTER_WRITE_TIMEOUTS = 3, COUNTER_COUNT = 4 };

typedef struct server server_t;

typedef struct conn {
  uv_poll_t poll;
  server_t *srv;
  int fd;
  int32_t id;
  int eof;      // the peer's FIN was read
  int closing;  // conn_close was called; waiting for libuv to let go of the poll handle
  int reason;
  int err;  // errno for CLOSE_ERROR
  codec_stream_t codec;
  uint8_t *owed;  // a reply the kernel has not taken yet: owed[owed_off, owed_len)
  size_t owed_len, owed_off;
  uint64_t last_active;  // uv_now() of the last read or write progress
  uint64_t stalled_since;
  struct conn *idle_prev, *idle_next;    // all open connections, least recently active first
  struct conn *stall_prev, *stall_next;  // connections with a reply owed, oldest first
  struct conn *yield_prev, *yield_next;  // connections waiting for the next turn, in order
  int in_idle, in_stall, in_yield;
  double bytes_in, bytes_out;  // this connection's payload bytes, for connInfo (/connections)
} conn_t;

struct server {
  napi_env env;
  napi_ref on_close;
  napi_ref counters_ref;
  napi_ref resource;  // the async resource object: the receiver of onClose calls
  napi_async_context async_context;
  uv_loop_t *loop;
  uv_timer_t timer;
  int timer_open;
  uv_check_t turn_check;  // after each poll phase: the turn ends, the waiting connections read again
  int check_open;
  int turn_open;
  uint64_t turn_start;  // uv_hrtime() of this turn's first read
  conn_t *yield_head, *yield_tail;
  uint64_t timer_due;  // 0: not armed
  uint64_t idle_ms, write_ms;
  double *counters;
  conn_t *idle_head, *idle_tail, *stall_head, *stall_tail;
  conn_t **slots;  // by id
  int32_t slot_count, *free_ids, free_count;
  int32_t open;  // connections not yet reported closed
  int closed;    // closeServer was called
  uint8_t read_space[CODEC_HEADROOM + READ_SIZE];  // reads land after the codec's headroom
  uint8_t out_buf[CODEC_OUT_SIZE(READ_SIZE)];
  uint8_t mid_buf[CODEC_MID_SIZE(READ_SIZE)];
  uint32_t specials[CODEC_SPECIALS_SIZE(READ_SIZE)];
  int32_t kinds[CODEC_SPECIALS_SIZE(READ_SIZE)];
};

#define READ_BUF(s) ((s)->read_space + CODEC_HEADROOM)

// ---------------------------------------------------------------- lists and timer

static void idle_remove(conn_t *c) {
  server_t *s = c->srv;
  if (!c->in_idle) return;
  if (c->idle_prev) c->idle_prev->idle_next = c->idle_next;
  else s->idle_head = c->idle_next;
  if (c->idle_next) c->idle_next->idle_prev = c->idle_prev;
  else s->idle_tail = c->idle_prev;
  c->idle_prev = c->idle_next = NULL;
  c->in_idle = 0;
}

static void idle_append(conn_t *c) {
  server_t *s = c->srv;
  c->idle_prev = s->idle_tail;
  c->idle_next = NULL;
  if (s->idle_tail) s->idle_tail->idle_next = c;
  else s->idle_head = c;
  s->idle_tail = c;
  c->in_idle = 1;
}

static void stall_remove(conn_t *c) {
  server_t *s = c->srv;
  if (!c->in_stall) return;
  if (c->stall_prev) c->stall_prev->stall_next = c->stall_next;
  else s->stall_head = c->stall_next;
  if (c->stall_next) c->stall_next->stall_prev = c->stall_prev;
  else s->stall_tail = c->stall_prev;
  c->stall_prev = c->stall_next = NULL;
  c->in_stall = 0;
}

static void yield_remove(conn_t *c) {
  server_t *s = c->srv;
  if (!c->in_yield) return;
  if (c->yield_prev) c->yield_prev->yield_next = c->yield_next;
  else s->yield_head = c->yield_next;
  if (c->yield_next) c->yield_next->yield_prev = c->yield_prev;
  else s->yield_tail = c->yield_prev;
  c->yield_prev = c->yield_next = NULL;
  c->in_yield = 0;
}

static void on_timer(uv_timer_t *timer);

// Arms the timer for the earliest deadline, unless it is already due no later.
static void arm_timer(server_t *s, uint64_t deadline) {
  if (!s->timer_open || s->closed) return;
  if (s->timer_due != 0 && s->timer_due <= deadline) return;
  uint64_t now = uv_now(s->loop);
  s->timer_due = deadline;
  uv_timer_start(&s->timer, on_timer, deadline > now ? deadline - now : 0, 0);
}

// Traffic: the connection moves to the back of the idle list (its deadline only moves later).
static void touch(conn_t *c) {
  server_t *s = c->srv;
  c->last_active = uv_now(s->loop);
  if (s->idle_ms == 0 || s->idle_tail == c) return;
  idle_remove(c);
  idle_append(c);
}

static void stall_start(conn_t *c) {
  server_t *s = c->srv;
  if (s->write_ms == 0 || c->in_stall) return;
  c->stalled_since = uv_now(s->loop);
  c->stall_prev = s->stall_tail;
  c->stall_next = NULL;
  if (s->stall_tail) s->stall_tail->stall_next = c;
  else s->stall_head = c;
  s->stall_tail = c;
  c->in_stall = 1;
  arm_timer(s, c->stalled_since + s->write_ms);
}

// ---------------------------------------------------------------- closing

static void call_js(server_t *s, int argc, napi_value *argv) {
  napi_env env = s->env;
  napi_value cb, recv, result;
  napi_get_reference_value(env, s->on_close, &cb);
  napi_get_reference_value(env, s->resource, &recv);
  if (napi_make_callback(env, s->async_context, recv, cb, (size_t)argc, argv, &result) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);
    }
  }
}

static void server_maybe_free(server_t *s);

// libuv has let go of the poll handle: tell JavaScript, then free the connection.
static void on_conn_closed(uv_handle_t *handle) {
  conn_t *c = (conn_t *)handle->data;
  server_t *s = c->srv;
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value argv[4];
    napi_create_int32(env, c->id, &argv[0]);
    napi_create_int32(env, c->reason, &argv[1]);
    if (c->reason == CLOSE_ERROR) {
      napi_create_string_utf8(env, uv_err_name(-c->err), NAPI_AUTO_LENGTH, &argv[2]);
      napi_create_string_utf8(env, strerror(c->err), NAPI_AUTO_LENGTH, &argv[3]);
    } else {
      napi_get_undefined(env, &argv[2]);
      napi_get_undefined(env, &argv[3]);
    }
    call_js(s, 4, argv);
    napi_close_handle_scope(env, scope);
  }
  s->slots[c->id] = NULL;
  s->free_ids[s->free_count++] = c->id;
  s->open--;
  free(c);
  server_maybe_free(s);
}

static void conn_close(conn_t *c, int reason, int err) {
  if (c->closing) return;
  c->closing = 1;
  c->reason = reason;
  c->err = err;
  idle_remove(c);
  stall_remove(c);
  yield_remove(c);
  free(c->owed);
  c->owed = NULL;
  if (reason == CLOSE_IDLE) c->srv->counters[COUNTER_IDLE_TIMEOUTS] += 1;
  if (reason == CLOSE_STALL) {
    c->srv->counters[COUNTER_WRITE_TIMEOUTS] += 1;
    // Reset rather than close: the peer is not reading, so a FIN would only queue
    // behind replies it will never take, keeping kernel buffers busy for minutes.
    struct linger reset = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  }
  uv_close((uv_handle_t *)&c->poll, on_conn_closed);  // stops polling the fd first
  close(c->fd);
  c->fd = -1;
}

// ---------------------------------------------------------------- I/O

static void on_poll(uv_poll_t *handle, int status, int events);

// Writes what it can of p[0, n); keeps the rest and stops reading until it is
// written. Returns 1 when everything was written, 0 when something is owed or
// the connection failed.
static int send_reply(conn_t *c, const uint8_t *p, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t w = send(c->fd, p + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    conn_close(c, CLOSE_ERROR, w < 0 ? errno : EIO);
    return 0;
  }
  // The reply handed over is traffic (as src/tcp/connection.ts counts it).
  touch(c);
  if (off == n) return 1;
  c->owed = malloc(n - off);
  if (c->owed == NULL) {
    conn_close(c, CLOSE_ERROR, ENOMEM);
    return 0;
  }
  memcpy(c->owed, p + off, n - off);
  c->owed_len = n - off;
  c->owed_off = 0;
  uv_poll_start(&c->poll, UV_WRITABLE, on_poll);
  stall_start(c);
  return 0;
}

// After the peer's FIN: the held-back bytes go out unchanged, then we close once nothing is owed.
static void finish(conn_t *c) {
  server_t *s = c->srv;
  uint8_t rest[4];
  size_t n = codec_end(&c->codec, rest);
  if (n > 0) {
    s->counters[COUNTER_BYTES_OUT] += (double)n;
    c->bytes_out += (double)n;
    if (!send_reply(c, rest, n)) return;  // owed, or failed: on_writable finishes
  }
  conn_close(c, CLOSE_END, 0);
}

// Scratch space for one codec_push() of n bytes outside the server's own buffers;
// on failure (0) what was allocated is freed by scratch_free() all the same.
static int scratch_alloc(codec_scratch_t *sc, size_t n) {
  sc->out = malloc(CODEC_OUT_SIZE(n));
  sc->mid = malloc(CODEC_MID_SIZE(n));
  sc->specials = malloc(CODEC_SPECIALS_SIZE(n) * sizeof(uint32_t));
  sc->kinds = malloc(CODEC_SPECIALS_SIZE(n) * sizeof(int32_t));
  return sc->out != NULL && sc->mid != NULL && sc->specials != NULL && sc->kinds != NULL;
}

static void scratch_free(codec_scratch_t *sc) {
  free(sc->out);
  free(sc->mid);
  free(sc->specials);
  free(sc->kinds);
}

// Uppercases and answers one chunk read from the peer. Returns 1 to go on reading.
// `data` has CODEC_HEADROOM bytes before it; `scratch` is sized for n bytes.
static int answer(conn_t *c, uint8_t *data, size_t n, const codec_scratch_t *scratch) {
  server_t *s = c->srv;
  s->counters[COUNTER_BYTES_IN] += (double)n;
  c->bytes_in += (double)n;
  size_t out_n;
  uint8_t *out = codec_push(codec_napi_tables(), &c->codec, data, n, scratch, &out_n);
  if (out_n == 0) {
    touch(c);
    return 1;
  }
  s->counters[COUNTER_BYTES_OUT] += (double)out_n;
  c->bytes_out += (double)out_n;
  return send_reply(c, out, out_n);
}

static void on_poll(uv_poll_t *handle, int status, int events);

// True when this turn's budget is spent (the first read of a turn starts it).
static int turn_spent(server_t *s) {
  uint64_t now = uv_hrtime();
  if (!s->turn_open) {
    s->turn_open = 1;
    s->turn_start = now;
    return 0;
  }
  return now - s->turn_start > TURN_BUDGET_NS;
}

// Whether fewer than SMALL_CHUNK bytes wait to be read (an interactive client's request).
static int small_pending(int fd) {
  int n = 0;
  return ioctl(fd, FIONREAD, &n) == 0 && n < SMALL_CHUNK;
}

// Stops reading `c` until the next turn (on_turn_check polls it again).
static void yield_turn(conn_t *c) {
  server_t *s = c->srv;
  uv_poll_stop(&c->poll);
  c->yield_prev = s->yield_tail;
  c->yield_next = NULL;
  if (s->yield_tail) s->yield_tail->yield_next = c;
  else s->yield_head = c;
  s->yield_tail = c;
  c->in_yield = 1;
}

// After the poll phase: the turn is over; the connections that waited read again, first come first.
static void on_turn_check(uv_check_t *check) {
  server_t *s = (server_t *)check->data;
  s->turn_open = 0;
  while (s->yield_head) {
    conn_t *c = s->yield_head;
    yield_remove(c);
    uv_poll_start(&c->poll, UV_READABLE, on_poll);
  }
}

static void on_readable(conn_t *c) {
  server_t *s = c->srv;
  const codec_scratch_t scratch = {.out = s->out_buf, .mid = s->mid_buf, .specials = s->specials, .kinds = s->kinds};
  for (int k = 0; k < MAX_READS_PER_EVENT; k++) {
    if (turn_spent(s) && !small_pending(c->fd)) {
      yield_turn(c);
      return;
    }
    ssize_t n = read(c->fd, READ_BUF(s), READ_SIZE);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) conn_close(c, CLOSE_ERROR, errno);
      return;
    }
    if (n == 0) {
      c->eof = 1;
      finish(c);
      return;
    }
    if (!answer(c, READ_BUF(s), (size_t)n, &scratch)) return;
    if (n < READ_SIZE) return;  // most likely drained; level-triggered polling says if not
  }
}

static void on_writable(conn_t *c) {
  while (c->owed_off < c->owed_len) {
    ssize_t w = send(c->fd, c->owed + c->owed_off, c->owed_len - c->owed_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      c->owed_off += (size_t)w;
      touch(c);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    conn_close(c, CLOSE_ERROR, w < 0 ? errno : EIO);
    return;
  }
  free(c->owed);
  c->owed = NULL;
  c->owed_len = c->owed_off = 0;
  stall_remove(c);
  if (c->eof) {
    finish(c);
    return;
  }
  uv_poll_start(&c->poll, UV_READABLE, on_poll);
}

// The socket's pending error, for a poll error (libuv reports EPOLLERR as EBADF).
static int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) return ECONNRESET;
  return err;
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  conn_t *c = (conn_t *)handle->data;
  if (c->closing) return;
  if (status < 0) {
    conn_close(c, CLOSE_ERROR, socket_error(c->fd));
    return;
  }
  if (events & UV_WRITABLE) on_writable(c);
  else if (events & UV_READABLE) on_readable(c);
}

static void on_timer(uv_timer_t *timer) {
  server_t *s = (server_t *)timer->data;
  s->timer_due = 0;
  uint64_t now = uv_now(s->loop);
  // Stalls first: with equal timeouts a client that stopped reading meets the write timeout.
  while (s->stall_head && s->stall_head->stalled_since + s->write_ms <= now) conn_close(s->stall_head, CLOSE_STALL, 0);
  while (s->idle_head && s->idle_head->last_active + s->idle_ms <= now) conn_close(s->idle_head, CLOSE_IDLE, 0);
  uint64_t next = 0;
  if (s->stall_head) next = s->stall_head->stalled_since + s->write_ms;
  if (s->idle_head) {
    uint64_t idle = s->idle_head->last_active + s->idle_ms;
    if (next == 0 || idle < next) next = idle;
  }
  if (next != 0) arm_timer(s, next);
}

// ---------------------------------------------------------------- server lifetime

static void on_timer_closed(uv_handle_t *handle) {
  server_t *s = (server_t *)handle->data;
  s->timer_open = 0;
  server_maybe_free(s);
}

static void on_check_closed(uv_handle_t *handle) {
  server_t *s = (server_t *)handle->data;
  s->check_open = 0;
  server_maybe_free(s);
}

// Freed once closeServer was called, every connection reported closed and the timer let go.
static void server_maybe_free(server_t *s) {
  if (!s->closed || s->open > 0 || s->timer_open || s->check_open) return;
  napi_env env = s->env;
  napi_delete_reference(env, s->on_close);
  napi_delete_reference(env, s->counters_ref);
  napi_delete_reference(env, s->resource);
  napi_async_destroy(env, s->async_context);
  free(s->slots);
  free(s->free_ids);
  free(s);
}

static server_t *unwrap_server(napi_env env, napi_value v) {
  server_t *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || s == NULL) {
    napi_throw_type_error(env, NULL, "upcase native: not a TCP server handle");
    return NULL;
  }
  if (s->closed) {
    napi_throw_error(env, NULL, "upcase native: the TCP server handle is closed");
    return NULL;
  }
  return s;
}

static napi_value throw_errno(napi_env env, const char *syscall, int err) {
  napi_value msg, code, error;
  char text[128];
  snprintf(text, sizeof text, "%s %s", syscall, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_throw(env, error);
  return NULL;
}

// createServer(counters: Float64Array(counters.length), idleMs, writeMs, onClose(id, reason, code, message)) -> handle
static napi_value js_create_server(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (codec_napi_ready(env) == NULL) return NULL;
  napi_typedarray_type type;
  size_t length;
  void *counters;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &counters, NULL, NULL) != napi_ok || type != napi_float64_array || length < COUNTER_COUNT) {
    napi_throw_type_error(env, NULL, "upcase native: counters must be a Float64Array(counters.length)");
    return NULL;
  }
  double idle_ms, write_ms;
  CHECK(napi_get_value_double(env, argv[1], &idle_ms));
  CHECK(napi_get_value_double(env, argv[2], &write_ms));
  server_t *s = calloc(1, sizeof *s);
  if (s == NULL) return throw_errno(env, "calloc", ENOMEM);
  s->env = env;
  s->counters = counters;
  s->idle_ms = idle_ms > 0 ? (uint64_t)idle_ms : 0;
  s->write_ms = write_ms > 0 ? (uint64_t)write_ms : 0;
  CHECK(napi_create_reference(env, argv[0], 1, &s->counters_ref));
  CHECK(napi_create_reference(env, argv[3], 1, &s->on_close));
  napi_value name, handle;
  CHECK(napi_create_string_utf8(env, "upcase:tcp", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_object(env, &handle));
  CHECK(napi_async_init(env, handle, name, &s->async_context));
  CHECK(napi_create_reference(env, handle, 1, &s->resource));
  CHECK(napi_get_uv_event_loop(env, &s->loop));
  uv_timer_init(s->loop, &s->timer);
  s->timer.data = s;
  s->timer_open = 1;
  uv_unref((uv_handle_t *)&s->timer);  // connections keep the loop alive, not the timer
  uv_check_init(s->loop, &s->turn_check);
  s->turn_check.data = s;
  s->check_open = 1;
  uv_check_start(&s->turn_check, on_turn_check);
  uv_unref((uv_handle_t *)&s->turn_check);
  napi_value external;
  CHECK(napi_create_external(env, s, NULL, NULL, &external));
  return external;
}

static int32_t take_id(server_t *s) {
  if (s->free_count > 0) return s->free_ids[--s->free_count];
  if (s->slot_count % 1024 == 0) {
    int32_t cap = s->slot_count + 1024;
    conn_t **slots = realloc(s->slots, (size_t)cap * sizeof *slots);
    int32_t *free_ids = realloc(s->free_ids, (size_t)cap * sizeof *free_ids);
    if (slots) s->slots = slots;
    if (free_ids) s->free_ids = free_ids;
    if (!slots || !free_ids) return -1;
  }
  return s->slot_count++;
}

// adopt(server, fd, initial: Buffer | null) -> id. Serves a duplicate of `fd`
// (the caller then closes its own); `initial` is data already read from it.
static napi_value js_adopt(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  server_t *s = unwrap_server(env, argv[0]);
  if (s == NULL) return NULL;
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[1], &fd));
  uint8_t *initial = NULL;
  size_t initial_length = 0;
  bool is_buffer = false;
  if (argc >= 3 && napi_is_buffer(env, argv[2], &is_buffer) == napi_ok && is_buffer) {
    CHECK(napi_get_buffer_info(env, argv[2], (void **)&initial, &initial_length));
  }
  int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return throw_errno(env, "fcntl(F_DUPFD_CLOEXEC)", errno);
  int flags = fcntl(dup_fd, F_GETFL);
  if (flags >= 0 && !(flags & O_NONBLOCK)) fcntl(dup_fd, F_SETFL, flags | O_NONBLOCK);
  conn_t *c = calloc(1, sizeof *c);
  int32_t id = c == NULL ? -1 : take_id(s);
  if (id < 0 || uv_poll_init(s->loop, &c->poll, dup_fd) != 0) {
    if (id >= 0) s->free_ids[s->free_count++] = id;
    free(c);
    close(dup_fd);
    return throw_errno(env, "adopt", ENOMEM);
  }
  c->poll.data = c;
  c->srv = s;
  c->fd = dup_fd;
  c->id = id;
  s->slots[id] = c;
  s->open++;
  c->last_active = uv_now(s->loop);
  if (s->idle_ms > 0) {
    idle_append(c);
    arm_timer(s, c->last_active + s->idle_ms);
  }
  uv_poll_start(&c->poll, UV_READABLE, on_poll);
  // Bytes read before the hand-over (what followed a PROXY header) are the stream's
  // first chunk, answered in one reply. Copied: the codec rewrites its input.
  if (initial_length > 0) {
    uint8_t *copy = malloc(CODEC_HEADROOM + initial_length);
    codec_scratch_t scratch;
    int ok = scratch_alloc(&scratch, initial_length);
    if (copy == NULL || !ok) {
      conn_close(c, CLOSE_ERROR, ENOMEM);
    } else {
      memcpy(copy + CODEC_HEADROOM, initial, initial_length);
      answer(c, copy + CODEC_HEADROOM, initial_length, &scratch);
    }
    free(copy);
    scratch_free(&scratch);
  }
  napi_value result;
  CHECK(napi_create_int32(env, id, &result));
  return result;
}

// destroy(server, id): closes the connection now (onClose follows, reason 4).
static napi_value js_destroy(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  server_t *s = NULL;
  CHECK(napi_get_value_external(env, argv[0], (void **)&s));
  int32_t id;
  CHECK(napi_get_value_int32(env, argv[1], &id));
  if (s != NULL && id >= 0 && id < s->slot_count && s->slots[id] != NULL) conn_close(s->slots[id], CLOSE_DESTROYED, 0);
  return NULL;
}

// connInfo(server, id, out: Float64Array(4)) -> bool: one open connection's figures
// [bytes in, bytes out, milliseconds since its last read or write progress, reply
// bytes owed]; false when no connection has that id. Reads only counters, never payload.
static napi_value js_conn_info(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  server_t *s = NULL;
  CHECK(napi_get_value_external(env, argv[0], (void **)&s));
  int32_t id;
  CHECK(napi_get_value_int32(env, argv[1], &id));
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, argv[2], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_float64_array || length < 4) {
    napi_throw_type_error(env, NULL, "upcase native: connInfo(server, id, Float64Array(4))");
    return NULL;
  }
  conn_t *c = s != NULL && !s->closed && id >= 0 && id < s->slot_count ? s->slots[id] : NULL;
  if (c != NULL && !c->closing) {
    double *out = data;
    uint64_t now = uv_now(s->loop);
    out[0] = c->bytes_in;
    out[1] = c->bytes_out;
    out[2] = now > c->last_active ? (double)(now - c->last_active) : 0;
    out[3] = (double)(c->owed_len - c->owed_off);
  }
  napi_value result;
  CHECK(napi_get_boolean(env, c != NULL && !c->closing, &result));
  return result;
}

// closeServer(server): closes every connection (each reported to onClose) and
// frees the server once they are. Idempotent.
static napi_value js_close_server(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  server_t *s = NULL;
  CHECK(napi_get_value_external(env, argv[0], (void **)&s));
  if (s == NULL || s->closed) return NULL;
  for (int32_t id = 0; id < s->slot_count; id++) {
    if (s->slots[id] != NULL) conn_close(s->slots[id], CLOSE_DESTROYED, 0);
  }
  s->closed = 1;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
  uv_check_stop(&s->turn_check);
  uv_close((uv_handle_t *)&s->turn_check, on_check_closed);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setTables", NULL, codec_napi_set_tables, NULL, NULL, NULL, napi_default, NULL},
      {"createServer", NULL, js_create_server, NULL, NULL, NULL, napi_default, NULL},
      {"adopt", NULL, js_adopt, NULL, NULL, NULL, napi_default, NULL},
      {"destroy", NULL, js_destroy, NULL, NULL, NULL, napi_default, NULL},
      {"connInfo", NULL, js_conn_info, NULL, NULL, NULL, napi_default, NULL},
      {"closeServer", NULL, js_close_server, NULL, NULL, NULL, napi_default, NULL},
      {"codecPaths", NULL, codec_napi_paths, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  static const named_int_t reasons[] = {
      {"end", CLOSE_END}, {"idle", CLOSE_IDLE}, {"stall", CLOSE_STALL}, {"error", CLOSE_ERROR}, {"destroyed", CLOSE_DESTROYED},
  };
  static const named_int_t counters[] = {
      {"bytesIn", COUNTER_BYTES_IN},
      {"bytesOut", COUNTER_BYTES_OUT},
      {"idleTimeouts", COUNTER_IDLE_TIMEOUTS},
      {"writeTimeouts", COUNTER_WRITE_TIMEOUTS},
      {"length", COUNTER_COUNT},
  };
  if (!export_named_ints(env, exports, "closeReasons", reasons, sizeof reasons / sizeof reasons[0]) ||
      !export_named_ints(env, exports, "counters", counters, sizeof counters / sizeof counters[0])) {
    napi_throw_error(env, NULL, "upcase native: could not export the constants");
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
