// Optional native UDP transport for upcase: batched receive (recvmmsg) and
// batched send (sendmmsg) on a socket polled by the Node.js event loop.
//
// The addon does I/O only. Every decision (guards, rate limit, uppercasing) is
// made in TypeScript on the same shared memory, so behaviour is identical to
// the node:dgram fallback (src/udp/batch.ts). Linux only; anywhere else the
// build is skipped and upcase uses node:dgram.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "napi_check.h"
#include "napi_constants.h"

#define SLOTS 64
#define SLOT_SIZE 65536
// Batches read per readable event before yielding to the rest of the event loop.
#define MAX_BATCHES_PER_EVENT 8
// Per slot in `meta` (Int32), exported as `udpMeta` for src/udp/native.ts to read by name.
enum {
  META_LENGTH = 0,       // bytes received
  META_SOURCE_PORT = 1,  // the sender's port
  META_FAMILY = 2,       // 4 or 6
  META_REPLY_LENGTH = 3, // set by JavaScript: bytes to send back, -1 for no reply
  META_FIELDS = 4
};
// Per slot in `addr`: the IPv6 address, or the IPv4 address in the first 4 bytes.
#define ADDRESS_SIZE 16

typedef struct {
  int fd;
  int closed;
  int poll_active;   // uv_poll started and not yet closed
  int finalized;     // the JS object is gone
  napi_async_context async_context;
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;  // JS: (count) => void, replies written before it returns
  napi_ref self;      // keeps the JS handle alive while polling
  unsigned char *data;              // SLOTS * SLOT_SIZE
  int32_t *meta;                    // SLOTS * META_FIELDS
  unsigned char *addr;              // SLOTS * ADDRESS_SIZE
  struct sockaddr_storage src[SLOTS];
  struct mmsghdr msgs[SLOTS];
  struct iovec iov[SLOTS];
  int received;                     // slots filled by the last recvmmsg
  int64_t send_errors;
  int last_send_errno;
} batch_t;

static napi_value throw_errno(napi_env env, const char *syscall, int err) {
  napi_value msg, code, error;
  char text[128];
  snprintf(text, sizeof text, "%s %s", syscall, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  const char *name = err == EADDRINUSE ? "EADDRINUSE" : err == EACCES ? "EACCES" : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : err == EAFNOSUPPORT ? "EAFNOSUPPORT" : "EIO";
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_value errno_v;
  napi_create_int32(env, -err, &errno_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_value syscall_v;
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v);
  napi_set_named_property(env, error, "syscall", syscall_v);
  napi_throw(env, error);
  return NULL;
}

static void unpack_source(batch_t *b, int i) {
  struct sockaddr_storage *ss = &b->src[i];
  int32_t *m = b->meta + i * META_FIELDS;
  unsigned char *a = b->addr + i * ADDRESS_SIZE;
  if (ss->ss_family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    m[META_SOURCE_PORT] = ntohs(sin->sin_port);
    m[META_FAMILY] = 4;
    memcpy(a, &sin->sin_addr, 4);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    m[META_SOURCE_PORT] = ntohs(sin6->sin6_port);
    m[META_FAMILY] = 6;
    memcpy(a, &sin6->sin6_addr, 16);
  }
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  batch_t *b = (batch_t *)handle->data;
  if (b->closed || status < 0 || !(events & UV_READABLE)) return;
  napi_env env = b->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv_obj, argv[1];
  napi_get_reference_value(env, b->callback, &cb);
  napi_get_reference_value(env, b->self, &recv_obj);
  for (int batch = 0; batch < MAX_BATCHES_PER_EVENT && !b->closed; batch++) {
    for (int i = 0; i < SLOTS; i++) {
      b->iov[i].iov_base = b->data + (size_t)i * SLOT_SIZE;
      b->iov[i].iov_len = SLOT_SIZE;
      memset(&b->msgs[i].msg_hdr, 0, sizeof b->msgs[i].msg_hdr);
      b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
      b->msgs[i].msg_hdr.msg_iovlen = 1;
      b->msgs[i].msg_hdr.msg_name = &b->src[i];
      b->msgs[i].msg_hdr.msg_namelen = sizeof b->src[i];
    }
    int n = recvmmsg(b->fd, b->msgs, SLOTS, MSG_DONTWAIT, NULL);
    if (n <= 0) break;  // EAGAIN (drained) or a transient error: wait for the next event
    b->received = n;
    for (int i = 0; i < n; i++) {
      int32_t *m = b->meta + i * META_FIELDS;
      // MSG_TRUNC cannot happen: a slot holds the largest possible datagram.
      m[META_LENGTH] = (int32_t)b->msgs[i].msg_len;
      m[META_REPLY_LENGTH] = -1;
      unpack_source(b, i);
    }
    napi_create_int32(env, n, &argv[0]);
    napi_value result;
    // The JS side catches its own errors; anything escaping is a bug and goes to
    // Node's uncaught-exception path like any other callback's.
    if (napi_make_callback(env, b->async_context, recv_obj, cb, 1, argv, &result) != napi_ok) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value exc;
        napi_get_and_clear_last_exception(env, &exc);
        napi_fatal_exception(env, exc);
      }
      break;
    }
    if (n < SLOTS) break;
  }
  napi_close_handle_scope(env, scope);
}

// The slot memory belongs to its ArrayBuffers (freed with them); `b` is freed
// when both the JS object is gone and libuv has let go of the poll handle.
static void free_memory(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static void batch_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  batch_t *b = (batch_t *)data;
  if (!b->closed && b->fd >= 0) close(b->fd);
  b->closed = 1;
  if (b->async_context != NULL) napi_async_destroy(env, b->async_context);
  b->async_context = NULL;
  b->finalized = 1;
  if (!b->poll_active) free(b);
}

static void on_poll_closed(uv_handle_t *handle) {
  batch_t *b = (batch_t *)handle->data;
  b->poll_active = 0;
  if (b->finalized) free(b);
}

static batch_t *unwrap(napi_env env, napi_value obj) {
  batch_t *b = NULL;
  if (napi_unwrap(env, obj, (void **)&b) != napi_ok) {
    napi_throw_type_error(env, NULL, "upcase native: not a socket");
    return NULL;
  }
  return b;
}

// open(address: string, port: number, family: 4 | 6, reusePort: boolean) -> socket object with `port`
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char address[64];
  size_t len;
  CHECK(napi_get_value_string_utf8(env, argv[0], address, sizeof address, &len));
  int32_t port, family;
  CHECK(napi_get_value_int32(env, argv[1], &port));
  CHECK(napi_get_value_int32(env, argv[2], &family));
  bool reuse_port = false;
  if (argc >= 4) napi_get_value_bool(env, argv[3], &reuse_port);

  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int size = 4 << 20;  // room for bursts: the kernel caps it at net.core.[rw]mem_max
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  if (reuse_port) {
    // Cluster workers each bind the same port; the kernel spreads datagrams by flow.
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
      int err = errno;
      close(fd);
      return throw_errno(env, "setsockopt(SO_REUSEPORT)", err);
    }
  }
  struct sockaddr_storage ss;
  socklen_t sslen;
  memset(&ss, 0, sizeof ss);
  if (family == 6) {
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, address, &sin6->sin6_addr) != 1) {
      close(fd);
      return throw_errno(env, "inet_pton", EADDRNOTAVAIL);
    }
    sslen = sizeof *sin6;
  } else {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, address, &sin->sin_addr) != 1) {
      close(fd);
      return throw_errno(env, "inet_pton", EADDRNOTAVAIL);
    }
    sslen = sizeof *sin;
  }
  if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "bind", err);
  }
  sslen = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sslen);
  int bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);

  batch_t *b = calloc(1, sizeof *b);
  b->fd = fd;
  b->env = env;
  b->data = malloc((size_t)SLOTS * SLOT_SIZE);
  b->meta = calloc(SLOTS * META_FIELDS, sizeof(int32_t));
  b->addr = calloc(SLOTS * ADDRESS_SIZE, 1);

  napi_value obj, data_ab, meta_ab, addr_ab, v;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_wrap(env, obj, b, batch_finalize, NULL, NULL));
  // External buffers: the memory stays owned by `b`; JS sees views of it.
  CHECK(napi_create_external_arraybuffer(env, b->data, (size_t)SLOTS * SLOT_SIZE, free_memory, NULL, &data_ab));
  CHECK(napi_create_external_arraybuffer(env, b->meta, SLOTS * META_FIELDS * sizeof(int32_t), free_memory, NULL, &meta_ab));
  CHECK(napi_create_external_arraybuffer(env, b->addr, SLOTS * ADDRESS_SIZE, free_memory, NULL, &addr_ab));
  CHECK(napi_set_named_property(env, obj, "data", data_ab));
  CHECK(napi_set_named_property(env, obj, "meta", meta_ab));
  CHECK(napi_set_named_property(env, obj, "addr", addr_ab));
  CHECK(napi_create_int32(env, bound_port, &v));
  CHECK(napi_set_named_property(env, obj, "port", v));
  CHECK(napi_create_int32(env, fd, &v));
  CHECK(napi_set_named_property(env, obj, "fd", v));
  return obj;
}

// start(socket, callback): poll for readability and call callback(count) per batch.
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], self;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  batch_t *b = unwrap(env, argv[0]);
  if (b == NULL) return NULL;
  if (b->poll_active || b->closed) {
    napi_throw_error(env, NULL, "upcase native: already started or closed");
    return NULL;
  }
  CHECK(napi_create_reference(env, argv[1], 1, &b->callback));
  CHECK(napi_create_reference(env, argv[0], 1, &b->self));
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "upcase:udp", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, argv[0], name, &b->async_context));
  if (uv_poll_init(loop, &b->poll, b->fd) != 0) return throw_errno(env, "uv_poll_init", EIO);
  b->poll.data = b;
  b->poll_active = 1;
  uv_poll_start(&b->poll, UV_READABLE, on_readable);
  return NULL;
}

// send(socket, count): sends slot i's reply (meta[i * META_FIELDS + META_REPLY_LENGTH] bytes from data slot i) to slot i's source,
// for every i < count with a reply length >= 0. Returns the number of datagrams the kernel refused.
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  batch_t *b = unwrap(env, argv[0]);
  if (b == NULL) return NULL;
  int32_t count;
  CHECK(napi_get_value_int32(env, argv[1], &count));
  if (count < 0 || count > b->received) count = b->received;
  struct mmsghdr out[SLOTS];
  int k = 0;
  for (int i = 0; i < count; i++) {
    int32_t reply = b->meta[i * META_FIELDS + META_REPLY_LENGTH];
    if (reply < 0 || reply > SLOT_SIZE) continue;
    b->iov[i].iov_base = b->data + (size_t)i * SLOT_SIZE;
    b->iov[i].iov_len = (size_t)reply;
    memset(&out[k], 0, sizeof out[k]);
    out[k].msg_hdr.msg_iov = &b->iov[i];
    out[k].msg_hdr.msg_iovlen = 1;
    out[k].msg_hdr.msg_name = &b->src[i];
    out[k].msg_hdr.msg_namelen = b->msgs[i].msg_hdr.msg_namelen;
    k++;
  }
  int sent = 0, refused = 0, retried = 0;
  while (sent < k && !b->closed) {
    int n = sendmmsg(b->fd, out + sent, (unsigned)(k - sent), MSG_DONTWAIT);
    if (n > 0) {
      sent += n;
      continue;
    }
    int err = errno;
    if (n < 0 && err == EINTR) continue;
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK) && !retried) {
      retried = 1;  // the send buffer is full: one more try, then the rest is lost as UDP may be
      continue;
    }
    // A datagram the kernel refuses (e.g. EMSGSIZE, ECONNREFUSED) is skipped, not retried forever.
    b->last_send_errno = err;
    refused++;
    sent++;
  }
  b->send_errors += refused;
  napi_value result;
  CHECK(napi_create_int32(env, refused, &result));
  return result;
}

// lastSendError(socket): the errno name of the most recent refused send, or undefined.
static napi_value js_last_send_error(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  batch_t *b = unwrap(env, argv[0]);
  if (b == NULL) return NULL;
  if (b->last_send_errno == 0) {
    napi_get_undefined(env, &result);
    return result;
  }
  const char *name = b->last_send_errno == EMSGSIZE ? "EMSGSIZE"
                     : b->last_send_errno == EAGAIN ? "EAGAIN"
                     : b->last_send_errno == ECONNREFUSED ? "ECONNREFUSED"
                     : b->last_send_errno == ENOBUFS ? "ENOBUFS"
                     : b->last_send_errno == EPERM ? "EPERM"
                     : "EIO";
  CHECK(napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &result));
  return result;
}

static void close_batch(napi_env env, batch_t *b) {
  if (b->closed) return;
  b->closed = 1;
  if (b->poll_active) {
    uv_poll_stop(&b->poll);
    uv_close((uv_handle_t *)&b->poll, on_poll_closed);
  }
  close(b->fd);
  b->fd = -1;
  if (b->callback) napi_delete_reference(env, b->callback);
  if (b->self) napi_delete_reference(env, b->self);
  b->callback = NULL;
  b->self = NULL;
}

// close(socket): stops polling and closes the fd. Idempotent.
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  batch_t *b = unwrap(env, argv[0]);
  if (b == NULL) return NULL;
  close_batch(env, b);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"lastSendError", NULL, js_last_send_error, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value v;
  napi_create_int32(env, SLOTS, &v);
  napi_set_named_property(env, exports, "SLOTS", v);
  napi_create_int32(env, SLOT_SIZE, &v);
  napi_set_named_property(env, exports, "SLOT_SIZE", v);
  static const named_int_t meta[] = {
      {"length", META_LENGTH},           {"sourcePort", META_SOURCE_PORT}, {"family", META_FAMILY},
      {"replyLength", META_REPLY_LENGTH}, {"fields", META_FIELDS},         {"addressSize", ADDRESS_SIZE},
  };
  if (!export_named_ints(env, exports, "udpMeta", meta, sizeof meta / sizeof meta[0])) napi_throw_error(env, NULL, "upcase native: udpMeta");
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
