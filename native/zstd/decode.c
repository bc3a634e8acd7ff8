// A zstd stream decoder over Debian's libzstd, driven from JS one call at a time like the zran
// inflater: JS owns the buffers and the loop, so it sees where each frame ends (the checkpoints
// of plain tar+zstd layers) and can decode one zstd:chunked chunk's frames into a caller buffer.
// Node 20 has no zstd (zlib.zstdDecompress arrived in Node 22.15/23.8).
#include <node_api.h>
#include <stdlib.h>
#include <zstd.h>

#define CHECK(call)                                                 \
  do {                                                              \
    if ((call) != napi_ok) {                                        \
      napi_throw_error(env, NULL, "regfs_zstd: N-API call failed"); \
      return NULL;                                                  \
    }                                                               \
  } while (0)

static void finalize(napi_env env, void* data, void* hint) { ZSTD_freeDCtx((ZSTD_DCtx*)data); }

static ZSTD_DCtx* get_dctx(napi_env env, napi_value v) {
  ZSTD_DCtx* d = NULL;
  if (napi_get_value_external(env, v, (void**)&d) != napi_ok || d == NULL) {
    napi_throw_error(env, NULL, "regfs_zstd: not a decoder");
    return NULL;
  }
  return d;
}

static int get_range(napi_env env, napi_value buf, napi_value off, napi_value len, char** ptr, size_t* n) {
  void* data;
  size_t total;
  int64_t o, l;
  if (napi_get_buffer_info(env, buf, &data, &total) != napi_ok) {
    // Uint8Array that is not a Buffer
    napi_typedarray_type t;
    napi_value ab;
    size_t byte_off;
    if (napi_get_typedarray_info(env, buf, &t, &total, &data, &ab, &byte_off) != napi_ok) return 0;
  }
  if (napi_get_value_int64(env, off, &o) != napi_ok || napi_get_value_int64(env, len, &l) != napi_ok) return 0;
  if (o < 0 || l < 0 || (uint64_t)o + (uint64_t)l > total) return 0;
  *ptr = (char*)data + o;
  *n = (size_t)l;
  return 1;
}

// create() -> external decoder. The window limit stays libzstd's default (2^27 bytes), so a
// hostile frame cannot make the decoder allocate more than that.
static napi_value create(napi_env env, napi_callback_info info) {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  if (!d) {
    napi_throw_error(env, NULL, "regfs_zstd: out of memory");
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_external(env, d, finalize, NULL, &out));
  return out;
}

// decompress(h, input, inOff, inLen, output, outOff, outLen) -> [consumed, produced, frameDone]
// frameDone is 1 when a frame has been fully decoded and flushed (ZSTD_decompressStream returned
// 0). Corrupt input throws with libzstd's error name.
static napi_value decompress(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) {
    napi_throw_type_error(env, NULL, "regfs_zstd: decompress needs 7 arguments");
    return NULL;
  }
  ZSTD_DCtx* d = get_dctx(env, argv[0]);
  if (!d) return NULL;
  char *in, *out;
  size_t in_len, out_len;
  if (!get_range(env, argv[1], argv[2], argv[3], &in, &in_len) || !get_range(env, argv[4], argv[5], argv[6], &out, &out_len)) {
    napi_throw_range_error(env, NULL, "regfs_zstd: bad buffer range");
    return NULL;
  }
  ZSTD_inBuffer ib = {in, in_len, 0};
  ZSTD_outBuffer ob = {out, out_len, 0};
  size_t ret = ZSTD_decompressStream(d, &ob, &ib);
  if (ZSTD_isError(ret)) {
    napi_throw_error(env, "ERR_ZSTD", ZSTD_getErrorName(ret));
    return NULL;
  }
  napi_value result, v;
  CHECK(napi_create_array_with_length(env, 3, &result));
  CHECK(napi_create_int64(env, (int64_t)ib.pos, &v));
  CHECK(napi_set_element(env, result, 0, v));
  CHECK(napi_create_int64(env, (int64_t)ob.pos, &v));
  CHECK(napi_set_element(env, result, 1, v));
  CHECK(napi_create_int32(env, ret == 0 ? 1 : 0, &v));
  CHECK(napi_set_element(env, result, 2, v));
  return result;
}

// reset(h): forget the current frame; the next input starts a new one.
static napi_value reset(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  ZSTD_DCtx* d = get_dctx(env, argv[0]);
  if (!d) return NULL;
  ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"create", NULL, create, NULL, NULL, NULL, napi_default, NULL},
      {"decompress", NULL, decompress, NULL, NULL, NULL, napi_default, NULL},
      {"reset", NULL, reset, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
