// Keeping a /dev/fuse descriptor alive across a daemon restart (issue #19): descriptors travel
// over unix sockets as SCM_RIGHTS ancillary data (unix(7)), which Node cannot send or receive,
// and FUSE_NOTIFY_RESEND is a 16-byte write Node could do but is kept next to the rest.
//   sendFds(path, message, fds)    one datagram with fds attached: sd_notify's FDSTORE=1 (sd_notify(3))
//   request(path, message, fds)    one SOCK_SEQPACKET exchange with regfs-fd-holder: {rc, message, fds}
//   notifyResend(fd)               FUSE_NOTIFY_RESEND: the kernel queues again what was read, unanswered
#include <errno.h>
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "fd-msg.h"

// include/uapi/linux/fuse.h, protocol 7.40 (Linux 6.9): enum fuse_notify_code. Debian 12's
// linux-libc-dev (6.1) predates it, so it is written here.
#define REGFS_FUSE_NOTIFY_RESEND 7

static napi_value int32(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

// Reads (path: string, message: Buffer, fds: number[]) from argv; returns 0 or throws.
static int read_args(napi_env env, napi_value* argv, char* path, size_t* plen, void** msg, size_t* mlen, int* fds, size_t* nfds) {
  uint32_t n = 0;
  if (napi_get_value_string_utf8(env, argv[0], path, REGFS_PATH_MAX, plen) != napi_ok ||
      napi_get_buffer_info(env, argv[1], msg, mlen) != napi_ok || napi_get_array_length(env, argv[2], &n) != napi_ok ||
      n > REGFS_MAX_FDS) {
    napi_throw_type_error(env, NULL, "(path: string, message: Buffer, fds: number[] (at most 16))");
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    if (napi_get_element(env, argv[2], i, &v) != napi_ok || napi_get_value_int32(env, v, &fds[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "fds must be numbers");
      return -1;
    }
  }
  *nfds = n;
  return 0;
}

// sendFds(path, message, fds) -> 0 or -errno.
static napi_value send_fds(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char path[REGFS_PATH_MAX];
  size_t plen = 0, mlen = 0, nfds = 0;
  void* msg = NULL;
  int fds[REGFS_MAX_FDS];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    napi_throw_type_error(env, NULL, "sendFds(path, message, fds)");
    return NULL;
  }
  if (read_args(env, argv, path, &plen, &msg, &mlen, fds, &nfds) != 0) return NULL;
  struct sockaddr_un addr;
  unsigned int alen;
  int rc = regfs_unix_addr(path, plen, &addr, &alen);
  if (rc != 0) return int32(env, rc);
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return int32(env, -errno);
  if (connect(s, (struct sockaddr*)&addr, alen) < 0) rc = -errno;
  else rc = regfs_send_with_fds(s, msg, mlen, fds, nfds);
  close(s);
  return int32(env, rc);
}

// request(path, message, fds) -> { rc, message: Buffer, fds: number[] }. Blocks at most 5 s:
// the holder answers at once or is not there.
static napi_value request(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out, v;
  char path[REGFS_PATH_MAX];
  size_t plen = 0, mlen = 0, nfds = 0, nrecv = 0;
  void* msg = NULL;
  int fds[REGFS_MAX_FDS], got[REGFS_MAX_FDS];
  char reply[REGFS_MSG_MAX];
  ssize_t rlen = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    napi_throw_type_error(env, NULL, "request(path, message, fds)");
    return NULL;
  }
  if (read_args(env, argv, path, &plen, &msg, &mlen, fds, &nfds) != 0) return NULL;
  struct sockaddr_un addr;
  unsigned int alen;
  int rc = regfs_unix_addr(path, plen, &addr, &alen);
  int s = -1;
  if (rc == 0) {
    s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0) rc = -errno;
  }
  if (rc == 0) {
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(s, (struct sockaddr*)&addr, alen) < 0) rc = -errno;
  }
  if (rc == 0) rc = regfs_send_with_fds(s, msg, mlen, fds, nfds);
  if (rc == 0) {
    rlen = regfs_recv_with_fds(s, reply, sizeof(reply), got, &nrecv);
    if (rlen < 0) rc = (int)rlen;
  }
  if (s >= 0) close(s);
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "rc", int32(env, rc));
  napi_create_buffer_copy(env, rc == 0 ? (size_t)rlen : 0, reply, NULL, &v);
  napi_set_named_property(env, out, "message", v);
  napi_create_array_with_length(env, nrecv, &v);
  for (size_t i = 0; i < nrecv; i++) napi_set_element(env, v, (uint32_t)i, int32(env, got[i]));
  napi_set_named_property(env, out, "fds", v);
  return out;
}

// notifyResend(fd) -> 0, or -errno (EINVAL from a kernel older than 6.9, which does not know it).
static napi_value notify_resend(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "notifyResend(fd: number)");
    return NULL;
  }
  // struct fuse_out_header with unique 0: a notification, its code in `error`, no payload.
  struct {
    uint32_t len;
    int32_t error;
    uint64_t unique;
  } h = {.len = 16, .error = REGFS_FUSE_NOTIFY_RESEND, .unique = 0};
  ssize_t r;
  do r = write(fd, &h, sizeof(h));
  while (r < 0 && errno == EINTR);
  return int32(env, r < 0 ? -errno : r == (ssize_t)sizeof(h) ? 0 : -EIO);
}

napi_value regfs_mount_fuse(napi_env env, napi_callback_info info);
napi_value regfs_start_reader(napi_env env, napi_callback_info info);
napi_value regfs_stop_reader(napi_env env, napi_callback_info info);

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"mountFuse", NULL, regfs_mount_fuse, NULL, NULL, NULL, napi_default, NULL},
      {"startReader", NULL, regfs_start_reader, NULL, NULL, NULL, napi_default, NULL},
      {"stopReader", NULL, regfs_stop_reader, NULL, NULL, NULL, napi_default, NULL},
      {"sendFds", NULL, send_fds, NULL, NULL, NULL, napi_default, NULL},
      {"request", NULL, request, NULL, NULL, NULL, napi_default, NULL},
      {"notifyResend", NULL, notify_resend, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
