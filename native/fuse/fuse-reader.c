// Reading /dev/fuse on threads of our own (fs/fuse-session.ts). A read blocks until the kernel has
// a request; on libuv's threadpool such a read could not be cancelled, and Node waits for the
// pool's threads when it exits, so a process that handed its session over (and reads no more)
// could never exit while the mount was quiet. These threads are not joined: a process exits
// whatever they wait for.
//   startReader(fd, bufferSize, onRequest(buf | null, errno)) -> handle
//   stopReader(handle)   no more callbacks; the thread ends after its current read
#include <errno.h>
#include <node_api.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  int fd;
  size_t size;
  volatile int stopped;
  napi_threadsafe_function tsfn;
  pthread_t thread;
} reader_t;

typedef struct {
  char* data;
  size_t len;
  int err;
} item_t;

static void free_data(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  free(data);
}

// On the JS thread: one request (or the errno that ended the reader) to the callback.
static void call_js(napi_env env, napi_value cb, void* ctx, void* data) {
  item_t* it = (item_t*)data;
  reader_t* r = (reader_t*)ctx;
  if (env != NULL && !r->stopped) {
    napi_value argv[2], undef;
    if (it->data) {
      napi_create_external_buffer(env, it->len, it->data, free_data, NULL, &argv[0]);
      it->data = NULL;
    } else {
      napi_get_null(env, &argv[0]);
    }
    napi_create_int32(env, it->err, &argv[1]);
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, cb, 2, argv, NULL);
  }
  free(it->data);
  free(it);
}

static void* run(void* arg) {
  reader_t* r = (reader_t*)arg;
  char* buf = malloc(r->size);
  int err = buf ? 0 : ENOMEM;
  while (!err && !r->stopped) {
    ssize_t n = read(r->fd, buf, r->size);
    if (n < 0) {
      // ENOENT: the request was interrupted before we read it; EINTR/EAGAIN: try again.
      if (errno == ENOENT || errno == EINTR || errno == EAGAIN) continue;
      err = errno;  // ENODEV: unmounted
      break;
    }
    if (r->stopped) break;
    item_t* it = malloc(sizeof(item_t));
    char* copy = malloc((size_t)n);
    if (!it || !copy) {
      free(it);
      free(copy);
      err = ENOMEM;
      break;
    }
    memcpy(copy, buf, (size_t)n);
    *it = (item_t){.data = copy, .len = (size_t)n, .err = 0};
    if (napi_call_threadsafe_function(r->tsfn, it, napi_tsfn_blocking) != napi_ok) {
      free(copy);
      free(it);
      break;  // the environment is going away
    }
  }
  free(buf);
  if (err && !r->stopped) {
    item_t* it = calloc(1, sizeof(item_t));
    if (it) {
      it->err = err;
      if (napi_call_threadsafe_function(r->tsfn, it, napi_tsfn_blocking) != napi_ok) free(it);
    }
  }
  napi_release_threadsafe_function(r->tsfn, napi_tsfn_release);
  return NULL;
}

static void finalize_reader(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  (void)data;  // the reader struct lives as long as the process may call into it
}

napi_value regfs_start_reader(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], name, handle;
  int32_t fd;
  uint32_t size;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &size) != napi_ok || size < 8192) {
    napi_throw_type_error(env, NULL, "startReader(fd: number, bufferSize: number (>= 8192), onRequest: function)");
    return NULL;
  }
  reader_t* r = calloc(1, sizeof(reader_t));
  r->fd = fd;
  r->size = size;
  napi_create_string_utf8(env, "regfs-fuse-reader", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[2], NULL, name, 64, 1, NULL, NULL, r, call_js, &r->tsfn) != napi_ok) {
    free(r);
    napi_throw_error(env, NULL, "cannot create the reader's threadsafe function");
    return NULL;
  }
  if (pthread_create(&r->thread, NULL, run, r) != 0) {
    napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
    free(r);
    napi_throw_error(env, NULL, "cannot start a reader thread");
    return NULL;
  }
  pthread_detach(r->thread);
  napi_create_external(env, r, finalize_reader, NULL, &handle);
  return handle;
}

napi_value regfs_stop_reader(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  reader_t* r = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_external(env, argv[0], (void**)&r) != napi_ok) {
    napi_throw_type_error(env, NULL, "stopReader(handle)");
    return NULL;
  }
  if (!r->stopped) {
    r->stopped = 1;
    // The thread may stay blocked in read(): it must not keep the process alive.
    napi_unref_threadsafe_function(env, r->tsfn);
  }
  return NULL;
}
