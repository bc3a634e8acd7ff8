#ifndef REGFS_FD_MSG_H
#define REGFS_FD_MSG_H
#include <stddef.h>
#include <sys/types.h>

#define REGFS_MAX_FDS 16
#define REGFS_MSG_MAX 4096
#define REGFS_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */

/* sendmsg with `nfds` descriptors attached; 0 or -errno. */
int regfs_send_with_fds(int sock, const void* msg, size_t mlen, const int* fds, size_t nfds);
/* recvmsg: bytes received and the descriptors that came with them (close-on-exec), or -errno;
   a truncated message is -EMSGSIZE with no descriptors left open. */
ssize_t regfs_recv_with_fds(int sock, void* buf, size_t cap, int* fds, size_t* nfds);
struct sockaddr_un;
/* A unix socket address from a path, "@name" being abstract; 0 or -EINVAL. */
int regfs_unix_addr(const char* path, size_t plen, struct sockaddr_un* addr, unsigned int* alen);
#endif
