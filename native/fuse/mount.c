// mountFuse(mountpoint, options) -> the /dev/fuse descriptor of a new mount, or -errno. As root,
// mount(2) with fd=N as libfuse's fuse_mount_sys does (the kernel's FUSE mount options: fd,
// rootmode, user_id, group_id, allow_other, default_permissions, max_read); the caller serves
// the descriptor itself (fs/fuse-session.ts), which is what lets another process take it over.
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

napi_value regfs_mount_fuse(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  char mnt[4096], opts[1024], data[1200];
  size_t mlen = 0, olen = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], mnt, sizeof(mnt), &mlen) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], opts, sizeof(opts), &olen) != napi_ok || mlen >= sizeof(mnt) - 1 ||
      olen >= sizeof(opts) - 1) {
    napi_throw_type_error(env, NULL, "mountFuse(mountpoint: string, options: string)");
    return NULL;
  }
  int rc;
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    rc = -errno;
  } else {
    snprintf(data, sizeof(data), "fd=%d,rootmode=40000,user_id=%u,group_id=%u%s%s", fd, getuid(), getgid(), olen ? "," : "", opts);
    if (mount("regfs", mnt, "fuse.regfs", MS_RDONLY | MS_NOSUID | MS_NODEV, data) != 0) {
      rc = -errno;
      close(fd);
    } else {
      rc = fd;
    }
  }
  napi_create_int32(env, rc, &out);
  return out;
}
