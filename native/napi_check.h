// Shared by the native addons: return NULL with a JavaScript error when an N-API call fails.
#ifndef UPCASE_NAPI_CHECK_H
#define UPCASE_NAPI_CHECK_H

#include <node_api.h>

#define CHECK(call)                                         \
  do {                                                      \
    if ((call) != napi_ok) {                                \
      napi_throw_error(env, NULL, "upcase native: " #call); \
      return NULL;                                          \
    }                                                       \
  } while (0)

#endif
