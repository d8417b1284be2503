// Shared by the native addons: constants exported by name, so that TypeScript reads
// `binding.closeReasons.idle` instead of mirroring a number (src/tcp/native.ts, src/udp/native.ts).
#ifndef UPCASE_NAPI_CONSTANTS_H
#define UPCASE_NAPI_CONSTANTS_H

#include <node_api.h>
#include <stddef.h>

typedef struct {
  const char *name;
  int32_t value;
} named_int_t;

// exports[name] = a frozen { item.name: item.value, ... }. Returns 0 when an N-API call failed.
static inline int export_named_ints(napi_env env, napi_value exports, const char *name, const named_int_t *items, size_t count) {
  napi_value object, value;
  if (napi_create_object(env, &object) != napi_ok) return 0;
  for (size_t i = 0; i < count; i++) {
    if (napi_create_int32(env, items[i].value, &value) != napi_ok) return 0;
    if (napi_set_named_property(env, object, items[i].name, value) != napi_ok) return 0;
  }
  if (napi_object_freeze(env, object) != napi_ok) return 0;
  return napi_set_named_property(env, exports, name, object) == napi_ok;
}

#endif
