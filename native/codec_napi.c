// The C codec's N-API surface: see codec_napi.h.
#include "codec_napi.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "napi_check.h"

// The case tables (setTables), copied once and shared by every environment in the
// process (worker threads build the same tables). Written once under the lock, then
// published with a release store; readers that do not take the lock load `tables_set`
// with acquire, so they see the tables whole on weakly ordered CPUs (ARM) too.
static codec_tables_t tables;
static int tables_set = 0;
static uv_once_t tables_once = UV_ONCE_INIT;
static uv_mutex_t tables_lock;

static void init_tables_lock(void) { uv_mutex_init(&tables_lock); }

const codec_tables_t *codec_napi_tables(void) { return __atomic_load_n(&tables_set, __ATOMIC_ACQUIRE) ? &tables : NULL; }

const codec_tables_t *codec_napi_ready(napi_env env) {
  const codec_tables_t *t = codec_napi_tables();
  if (t == NULL) napi_throw_error(env, NULL, "upcase native: setTables() first");
  return t;
}

static napi_value throw_no_memory(napi_env env) {
  napi_value msg, code, error;
  napi_create_string_utf8(env, "upcase native: out of memory", NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, "ENOMEM", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_throw(env, error);
  return NULL;
}

napi_value codec_napi_set_tables(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_typedarray_type type;
  size_t length[3];
  void *data[3];
  napi_typedarray_type want[3] = {napi_int32_array, napi_int32_array, napi_uint8_array};
  for (int i = 0; i < 3; i++) {
    if (napi_get_typedarray_info(env, argv[i], &type, &length[i], &data[i], NULL, NULL) != napi_ok || type != want[i]) {
      napi_throw_type_error(env, NULL, "upcase native: setTables(Int32Array, Int32Array, Uint8Array)");
      return NULL;
    }
  }
  if (length[0] != CODEC_TABLE_SIZE || length[1] < 1 || (size_t)((int32_t *)data[1])[length[1] - 1] > length[2]) {
    napi_throw_range_error(env, NULL, "upcase native: case tables of the wrong size");
    return NULL;
  }
  // The first environment to get here copies the tables into memory the addon owns
  // (never freed, 0.5 MiB), which all of them then share.
  uv_once(&tables_once, init_tables_lock);
  uv_mutex_lock(&tables_lock);
  int ok = __atomic_load_n(&tables_set, __ATOMIC_RELAXED);
  if (!ok) {
    codec_init();
    ok = codec_build_tables(&tables, data[0], data[1], length[1] - 1, data[2], length[2]);
    __atomic_store_n(&tables_set, ok, __ATOMIC_RELEASE);
  }
  uv_mutex_unlock(&tables_lock);
  if (!ok) napi_throw_range_error(env, NULL, "upcase native: case tables the codec cannot use (or out of memory)");
  // UPCASE_CODEC_PATH names a path there is not: an error, never a silent fallback.
  else if (codec_path_error() != NULL) napi_throw_error(env, "UPCASE_ERR_CODEC_PATH", codec_path_error());
  return NULL;
}

napi_value codec_napi_paths(napi_env env, napi_callback_info info) {
  (void)info;
  if (codec_napi_ready(env) == NULL) return NULL;
  napi_value list, name;
  CHECK(napi_create_array(env, &list));
  uint32_t k = 0;
  CHECK(napi_create_string_utf8(env, codec_path_name(codec_resolve_path(CODEC_PATH_AUTO)), NAPI_AUTO_LENGTH, &name));
  CHECK(napi_set_element(env, list, k++, name));
  for (int p = CODEC_PATH_SCALAR; p < CODEC_PATH_COUNT; p++) {
    if (!codec_path_available((codec_path_t)p)) continue;
    CHECK(napi_create_string_utf8(env, codec_path_name((codec_path_t)p), NAPI_AUTO_LENGTH, &name));
    CHECK(napi_set_element(env, list, k++, name));
  }
  return list;
}

// ---------------------------------------------------------------- scratch space

// The input (after CODEC_HEADROOM bytes) and codec_push()'s scratch space for n bytes.
typedef struct {
  uint8_t *in;
  codec_scratch_t sc;
  size_t capacity;
} work_t;

static void work_free(work_t *w) {
  free(w->in);
  free(w->sc.out);
  free(w->sc.mid);
  free(w->sc.specials);
  free(w->sc.kinds);
  memset(w, 0, sizeof *w);
}

static int work_alloc(work_t *w, size_t n) {
  w->in = malloc(CODEC_HEADROOM + n);
  w->sc.out = malloc(CODEC_OUT_SIZE(n));
  w->sc.mid = malloc(CODEC_MID_SIZE(n));
  w->sc.specials = malloc(CODEC_SPECIALS_SIZE(n) * sizeof(uint32_t));
  w->sc.kinds = malloc(CODEC_SPECIALS_SIZE(n) * sizeof(int32_t));
  w->capacity = n;
  if (w->in != NULL && w->sc.out != NULL && w->sc.mid != NULL && w->sc.specials != NULL && w->sc.kinds != NULL) return 1;
  work_free(w);
  return 0;
}

// Each environment keeps the scratch space of its largest chunk up to this size;
// larger chunks get their own, freed after the call.
#define WORK_KEEP (256 * 1024)

static void free_instance(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  work_free((work_t *)data);
  free(data);
}

// Scratch space for n bytes: this environment's, or (n > WORK_KEEP) `own`, which the caller frees.
static work_t *work_for(napi_env env, size_t n, work_t *own) {
  work_t *kept = NULL;
  if (n > WORK_KEEP) return work_alloc(own, n) ? own : NULL;
  if (napi_get_instance_data(env, (void **)&kept) != napi_ok) return NULL;
  if (kept == NULL) {
    kept = calloc(1, sizeof *kept);
    if (kept == NULL || napi_set_instance_data(env, kept, free_instance, NULL) != napi_ok) {
      free(kept);
      return NULL;
    }
  }
  if (kept->in != NULL && kept->capacity >= n) return kept;
  work_free(kept);
  // At least 64 KiB (the read size of both TCP transports), so growth is rare.
  return work_alloc(kept, n < 65536 ? 65536 : n) ? kept : NULL;
}

// Uppercases n bytes of `data` as the next chunk of `stream` into a new Buffer; `finish`
// appends what the stream still holds (codec_end). `data` is not modified.
static napi_value push_copy(napi_env env, codec_stream_t *stream, const void *data, size_t n, int finish) {
  const codec_tables_t *t = codec_napi_ready(env);
  if (t == NULL) return NULL;
  work_t own = {0};
  work_t *w = work_for(env, n, &own);
  if (w == NULL) return throw_no_memory(env);
  if (n > 0) memcpy(w->in + CODEC_HEADROOM, data, n);  // an empty Buffer's data may be NULL
  size_t out_n;
  uint8_t *out = codec_push(t, stream, w->in + CODEC_HEADROOM, n, &w->sc, &out_n);
  uint8_t rest[4];
  size_t rest_n = finish ? codec_end(stream, rest) : 0;
  void *target;
  napi_value buffer;
  napi_status st = napi_create_buffer(env, out_n + rest_n, &target, &buffer);
  if (st == napi_ok) {
    if (out_n > 0) memcpy(target, out, out_n);
    if (rest_n > 0) memcpy((uint8_t *)target + out_n, rest, rest_n);
  }
  work_free(&own);
  CHECK(st);
  return buffer;
}

// ---------------------------------------------------------------- streams, for tests

typedef struct {
  codec_stream_t stream;
} codec_handle_t;

static void free_handle(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

// codecCreate(path = 'auto') -> handle
static napi_value js_codec_create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (codec_napi_ready(env) == NULL) return NULL;
  codec_path_t path = CODEC_PATH_AUTO;
  if (argc >= 1) {
    char name[16];
    size_t length;
    if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &length) != napi_ok) {
      napi_throw_type_error(env, NULL, "upcase native: codecCreate(path?: string)");
      return NULL;
    }
    int p = codec_path_from_name(name);
    if (p < 0 || !codec_path_available((codec_path_t)p)) {
      napi_throw_range_error(env, NULL, "upcase native: no such codec path on this CPU");
      return NULL;
    }
    path = (codec_path_t)p;
  }
  codec_handle_t *h = calloc(1, sizeof *h);
  if (h == NULL) return throw_no_memory(env);
  h->stream.path = (uint8_t)path;
  napi_value external;
  CHECK(napi_create_external(env, h, free_handle, NULL, &external));
  return external;
}

static codec_handle_t *unwrap_codec(napi_env env, napi_value v) {
  codec_handle_t *h = NULL;
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_external || napi_get_value_external(env, v, (void **)&h) != napi_ok || h == NULL) {
    napi_throw_type_error(env, NULL, "upcase native: not a codec handle");
    return NULL;
  }
  return h;
}

// Buffer or other Uint8Array: its bytes, or 0 with a TypeError.
static int bytes_of(napi_env env, napi_value v, void **data, size_t *n) {
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, v, &type, n, data, NULL, NULL) == napi_ok && type == napi_uint8_array) return 1;
  napi_throw_type_error(env, NULL, "upcase native: expected a Buffer or Uint8Array");
  return 0;
}

// codecPush(handle, chunk) -> Buffer (the chunk is not modified)
static napi_value js_codec_push(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  codec_handle_t *h = unwrap_codec(env, argv[0]);
  void *data;
  size_t n;
  if (h == NULL || !bytes_of(env, argv[1], &data, &n)) return NULL;
  return push_copy(env, &h->stream, data, n, 0);
}

// codecEnd(handle) -> Buffer
static napi_value js_codec_end(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  codec_handle_t *h = unwrap_codec(env, argv[0]);
  if (h == NULL) return NULL;
  uint8_t rest[4];
  size_t n = codec_end(&h->stream, rest);
  napi_value buffer;
  CHECK(napi_create_buffer_copy(env, n, rest, NULL, &buffer));
  return buffer;
}

// upcase(bytes) -> Buffer: a complete piece of input (nothing held back after it), on
// the widest path. The input is not modified.
static napi_value js_upcase(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data;
  size_t n;
  if (argc < 1 || !bytes_of(env, argv[0], &data, &n)) return NULL;
  codec_stream_t stream = {0};
  return push_copy(env, &stream, data, n, 1);
}

// Methods as JavaScript defines them: writable and configurable (tests wrap them).
#define METHOD ((napi_property_attributes)(napi_writable | napi_configurable))

napi_status codec_napi_define(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setTables", NULL, codec_napi_set_tables, NULL, NULL, NULL, METHOD, NULL},
      {"codecPaths", NULL, codec_napi_paths, NULL, NULL, NULL, METHOD, NULL},
      {"codecCreate", NULL, js_codec_create, NULL, NULL, NULL, METHOD, NULL},
      {"codecPush", NULL, js_codec_push, NULL, NULL, NULL, METHOD, NULL},
      {"codecEnd", NULL, js_codec_end, NULL, NULL, NULL, METHOD, NULL},
      {"upcase", NULL, js_upcase, NULL, NULL, NULL, METHOD, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
