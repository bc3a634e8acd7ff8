// sd_notify(3) without libsystemd: one datagram to the unix socket named by $NOTIFY_SOCKET.
// Node's dgram module speaks only UDP, so this is the small piece JS cannot do.
#include <errno.h>
#include <node_api.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

// notify(path, message) -> 0, or -errno.
napi_value regfs_sd_notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  char path[sizeof(((struct sockaddr_un*)0)->sun_path) + 1];
  char msg[4096];
  size_t plen = 0, mlen = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &plen) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], msg, sizeof(msg), &mlen) != napi_ok) {
    napi_throw_type_error(env, NULL, "notify(path: string, message: string)");
    return NULL;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (plen == 0 || plen >= sizeof(addr.sun_path)) {
    napi_create_int32(env, -EINVAL, &out);
    return out;
  }
  memcpy(addr.sun_path, path, plen);
  // An abstract socket is written "@name" and addressed with a leading NUL.
  if (path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int rc = 0;
  if (fd < 0) {
    rc = -errno;
  } else {
    if (sendto(fd, msg, mlen, MSG_NOSIGNAL, (struct sockaddr*)&addr, alen) < 0) rc = -errno;
    close(fd);
  }
  napi_create_int32(env, rc, &out);
  return out;
}
