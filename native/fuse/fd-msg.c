// One message with file descriptors attached (SCM_RIGHTS, unix(7)), both ways; shared by the
// N-API side (fd-pass.c) and the holder process (fd-holder.c).
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fd-msg.h"

int regfs_send_with_fds(int sock, const void* msg, size_t mlen, const int* fds, size_t nfds) {
  struct iovec iov = {.iov_base = (void*)msg, .iov_len = mlen};
  char ctl[CMSG_SPACE(sizeof(int) * REGFS_MAX_FDS)];
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  memset(ctl, 0, sizeof(ctl));
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (nfds > 0) {
    mh.msg_control = ctl;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t r;
  do r = sendmsg(sock, &mh, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : 0;
}

ssize_t regfs_recv_with_fds(int sock, void* buf, size_t cap, int* fds, size_t* nfds) {
  struct iovec iov = {.iov_base = buf, .iov_len = cap};
  char ctl[CMSG_SPACE(sizeof(int) * REGFS_MAX_FDS)];
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof(ctl);
  ssize_t r;
  do r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  *nfds = 0;
  if (r < 0) return -errno;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      // More than we can report would leak: close the rest (MSG_CTRUNC drops them anyway).
      if (*nfds < REGFS_MAX_FDS) fds[(*nfds)++] = fd;
      else close(fd);
    }
  }
  // A truncated message or a truncated fd list is not what the peer sent.
  if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    for (size_t i = 0; i < *nfds; i++) close(fds[i]);
    *nfds = 0;
    return -EMSGSIZE;
  }
  return r;
}

int regfs_unix_addr(const char* path, size_t plen, struct sockaddr_un* addr, unsigned int* alen) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (plen == 0 || plen >= sizeof(addr->sun_path)) return -EINVAL;
  memcpy(addr->sun_path, path, plen);
  // "@name" is an abstract socket, addressed with a leading NUL (systemd writes NOTIFY_SOCKET so).
  if (path[0] == '@') addr->sun_path[0] = '\0';
  *alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
  return 0;
}
