// The C codec's N-API surface (native/codec_napi.c), shared by the two addons that
// contain the codec: the TCP transport (upcase_tcp: setTables, codecPaths) and the
// codec addon (upcase_codec: all of them, for src/codec/native.ts).
#ifndef UPCASE_CODEC_NAPI_H
#define UPCASE_CODEC_NAPI_H

#include <node_api.h>

#include "codec.h"

// The case tables setTables() installed in this addon (shared by every environment of
// the process), or NULL before it succeeded.
const codec_tables_t *codec_napi_tables(void);

// The tables, or NULL with a JavaScript error ("setTables() first").
const codec_tables_t *codec_napi_ready(napi_env env);

// setTables(table: Int32Array, specialOffsets: Int32Array, specialBytes: Uint8Array)
napi_value codec_napi_set_tables(napi_env env, napi_callback_info info);
// codecPaths() -> [name of the path 'auto' means, ...every path this CPU has]
napi_value codec_napi_paths(napi_env env, napi_callback_info info);

// Adds setTables, codecPaths, codecCreate, codecPush, codecEnd and upcase to `exports`.
napi_status codec_napi_define(napi_env env, napi_value exports);

#endif
