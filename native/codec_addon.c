// The C codec as an addon of its own (upcase_codec.node), for the TypeScript codec's
// large chunks (src/codec/native.ts), as ws uses bufferutil: pure functions over bytes,
// with a TypeScript twin. The exports are in codec_napi.c.
#include <node_api.h>

#include "codec_napi.h"

static napi_value init(napi_env env, napi_value exports) {
  if (codec_napi_define(env, exports) != napi_ok) napi_throw_error(env, NULL, "upcase native: cannot define the codec's exports");
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
