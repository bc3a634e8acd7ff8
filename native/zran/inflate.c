// A raw-deflate inflater exposed one deflate block at a time, for zran-style random access into
// gzip layers (zlib's examples/zran.c). Node's zlib binding cannot stop at block boundaries
// (Z_BLOCK) nor resume mid-byte (inflatePrime); these few calls can. JS drives the loop.
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "regfs_native: N-API call failed"); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

typedef struct {
  z_stream strm;
  int open;
} inflater_t;

static void finalize(napi_env env, void* data, void* hint) {
  inflater_t* inf = (inflater_t*)data;
  if (inf->open) inflateEnd(&inf->strm);
  free(inf);
}

static inflater_t* get_inflater(napi_env env, napi_value v) {
  inflater_t* inf = NULL;
  if (napi_get_value_external(env, v, (void**)&inf) != napi_ok || inf == NULL || !inf->open) {
    napi_throw_error(env, NULL, "regfs_native: not an open inflater");
    return NULL;
  }
  return inf;
}

// create() -> external: a raw inflater (windowBits -15).
static napi_value create(napi_env env, napi_callback_info info) {
  inflater_t* inf = calloc(1, sizeof(inflater_t));
  if (!inf) {
    napi_throw_error(env, NULL, "regfs_native: out of memory");
    return NULL;
  }
  if (inflateInit2(&inf->strm, -15) != Z_OK) {
    free(inf);
    napi_throw_error(env, NULL, "regfs_native: inflateInit2 failed");
    return NULL;
  }
  inf->open = 1;
  napi_value out;
  CHECK(napi_create_external(env, inf, finalize, NULL, &out));
  return out;
}

// prime(h, bits, value): put bits into the bit buffer before resuming mid-byte.
// setDictionary(h, window): the 32 KiB of output preceding the resume point.
static napi_value prime(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  inflater_t* inf = get_inflater(env, argv[0]);
  if (!inf) return NULL;
  int32_t bits, value;
  CHECK(napi_get_value_int32(env, argv[1], &bits));
  CHECK(napi_get_value_int32(env, argv[2], &value));
  if (inflatePrime(&inf->strm, bits, value) != Z_OK) {
    napi_throw_error(env, NULL, "regfs_native: inflatePrime failed");
    return NULL;
  }
  return NULL;
}

static napi_value set_dictionary(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  inflater_t* inf = get_inflater(env, argv[0]);
  if (!inf) return NULL;
  void* data;
  size_t len;
  CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  if (inflateSetDictionary(&inf->strm, (const Bytef*)data, (uInt)len) != Z_OK) {
    napi_throw_error(env, NULL, "regfs_native: inflateSetDictionary failed");
    return NULL;
  }
  return NULL;
}

// inflate(h, input, inOffset, inLength, output, outOffset, outLength, stopAtBlock)
//   -> [consumed, produced, dataType, status]
// status: 0 ok, 1 stream end, -3 data error (corrupt), -5 buffer error (needs more input).
static napi_value do_inflate(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  inflater_t* inf = get_inflater(env, argv[0]);
  if (!inf) return NULL;
  void *in, *out;
  size_t inCap, outCap;
  int64_t inOff, inLen, outOff, outLen;
  bool stopAtBlock;
  CHECK(napi_get_buffer_info(env, argv[1], &in, &inCap));
  CHECK(napi_get_value_int64(env, argv[2], &inOff));
  CHECK(napi_get_value_int64(env, argv[3], &inLen));
  CHECK(napi_get_buffer_info(env, argv[4], &out, &outCap));
  CHECK(napi_get_value_int64(env, argv[5], &outOff));
  CHECK(napi_get_value_int64(env, argv[6], &outLen));
  CHECK(napi_get_value_bool(env, argv[7], &stopAtBlock));
  if (inOff < 0 || inLen < 0 || (size_t)(inOff + inLen) > inCap || outOff < 0 || outLen < 0 || (size_t)(outOff + outLen) > outCap) {
    napi_throw_range_error(env, NULL, "regfs_native: offsets out of range");
    return NULL;
  }
  z_stream* s = &inf->strm;
  s->next_in = (Bytef*)in + inOff;
  s->avail_in = (uInt)inLen;
  s->next_out = (Bytef*)out + outOff;
  s->avail_out = (uInt)outLen;
  int ret = inflate(s, stopAtBlock ? Z_BLOCK : Z_NO_FLUSH);
  int status = ret == Z_STREAM_END ? 1 : ret == Z_OK ? 0 : ret == Z_BUF_ERROR ? -5 : -3;
  if (ret == Z_NEED_DICT || ret == Z_MEM_ERROR || ret == Z_STREAM_ERROR) status = -3;
  napi_value result, v;
  CHECK(napi_create_array_with_length(env, 4, &result));
  CHECK(napi_create_int64(env, (int64_t)(inLen - s->avail_in), &v));
  CHECK(napi_set_element(env, result, 0, v));
  CHECK(napi_create_int64(env, (int64_t)(outLen - s->avail_out), &v));
  CHECK(napi_set_element(env, result, 1, v));
  CHECK(napi_create_int32(env, s->data_type, &v));
  CHECK(napi_set_element(env, result, 2, v));
  CHECK(napi_create_int32(env, status, &v));
  CHECK(napi_set_element(env, result, 3, v));
  return result;
}

static napi_value end(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  inflater_t* inf = get_inflater(env, argv[0]);
  if (!inf) return NULL;
  inflateEnd(&inf->strm);
  inf->open = 0;
  return NULL;
}

napi_value regfs_sd_notify(napi_env env, napi_callback_info info);

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"create", NULL, create, NULL, NULL, NULL, napi_default, NULL},
    {"prime", NULL, prime, NULL, NULL, NULL, napi_default, NULL},
    {"setDictionary", NULL, set_dictionary, NULL, NULL, NULL, napi_default, NULL},
    {"inflate", NULL, do_inflate, NULL, NULL, NULL, napi_default, NULL},
    {"end", NULL, end, NULL, NULL, NULL, napi_default, NULL},
    {"notify", NULL, regfs_sd_notify, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
