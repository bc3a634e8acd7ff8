// regfs-fd-holder <socket-path>: keeps /dev/fuse descriptors open while regfs restarts or after
// it was killed, outside systemd (under systemd the unit's fd store does this, issue #19). A FUSE
// connection lives as long as one descriptor of it is open; if the last one closes, every reader
// of the mount gets ENOTCONN. nydus keeps its fd in a supervisor the same way.
//
// One request per connection on a SOCK_SEQPACKET socket, answered at once:
//   "PUT <name>" + fds   hold these (replacing and closing what was held under <name>)  -> "OK"
//   "GET <name>"         -> "OK" + the held fds (copies; the holder keeps its own), or "NONE"
//   "DEL <name>"         close them                                                  -> "OK"
//   "PING"               -> "OK <number of names held>"
// Only the holder's own uid may talk to it (SO_PEERCRED). A held FUSE descriptor whose connection
// is gone (unmounted, aborted) reports POLLERR and is dropped; the holder exits when it holds
// nothing: after the last DEL or drop, or 10 s after start without a PUT. Nothing stays behind.
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fd-msg.h"

#define MAX_NAMES 64
#define NAME_MAX_LEN 255

struct held {
  char name[NAME_MAX_LEN + 1];
  int fds[REGFS_MAX_FDS];
  size_t nfds;
};

static struct held table[MAX_NAMES];
static size_t nheld = 0;

static void drop(size_t i) {
  for (size_t k = 0; k < table[i].nfds; k++) close(table[i].fds[k]);
  table[i] = table[--nheld];
}

static ssize_t find(const char* name) {
  for (size_t i = 0; i < nheld; i++)
    if (strcmp(table[i].name, name) == 0) return (ssize_t)i;
  return -1;
}

static void reply(int c, const char* text, const int* fds, size_t nfds) {
  regfs_send_with_fds(c, text, strlen(text), fds, nfds);
}

static void serve_one(int c) {
  struct ucred cred;
  socklen_t clen = sizeof(cred);
  char buf[REGFS_MSG_MAX + 1];
  int fds[REGFS_MAX_FDS];
  size_t nfds = 0;
  struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ssize_t n = regfs_recv_with_fds(c, buf, REGFS_MSG_MAX, fds, &nfds);
  if (n < 0) return;
  buf[n] = '\0';
  if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 || cred.uid != getuid()) {
    for (size_t k = 0; k < nfds; k++) close(fds[k]);
    reply(c, "ERR not your holder", NULL, 0);
    return;
  }
  const char* name = n > 4 ? buf + 4 : "";
  if (strlen(name) > NAME_MAX_LEN) {
    for (size_t k = 0; k < nfds; k++) close(fds[k]);
    reply(c, "ERR name too long", NULL, 0);
    return;
  }
  if (strncmp(buf, "PUT ", 4) == 0 && nfds > 0) {
    ssize_t i = find(name);
    if (i >= 0) drop((size_t)i);
    if (nheld == MAX_NAMES) {
      for (size_t k = 0; k < nfds; k++) close(fds[k]);
      reply(c, "ERR full", NULL, 0);
      return;
    }
    strcpy(table[nheld].name, name);
    memcpy(table[nheld].fds, fds, sizeof(int) * nfds);
    table[nheld++].nfds = nfds;
    reply(c, "OK", NULL, 0);
    return;
  }
  for (size_t k = 0; k < nfds; k++) close(fds[k]);
  if (strncmp(buf, "GET ", 4) == 0) {
    ssize_t i = find(name);
    if (i < 0) reply(c, "NONE", NULL, 0);
    else reply(c, "OK", table[i].fds, table[i].nfds);
  } else if (strncmp(buf, "DEL ", 4) == 0) {
    ssize_t i = find(name);
    if (i >= 0) drop((size_t)i);
    reply(c, "OK", NULL, 0);
  } else if (strcmp(buf, "PING") == 0) {
    char text[32];
    snprintf(text, sizeof(text), "OK %zu", nheld);
    reply(c, text, NULL, 0);
  } else {
    reply(c, "ERR unknown request", NULL, 0);
  }
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: regfs-fd-holder <socket-path>\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_un addr;
  unsigned int alen;
  if (regfs_unix_addr(argv[1], strlen(argv[1]), &addr, &alen) != 0) {
    fprintf(stderr, "regfs-fd-holder: bad socket path %s\n", argv[1]);
    return 2;
  }
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return 1;
  // A holder already answering on this path keeps the job; a stale socket file is replaced.
  if (connect(s, (struct sockaddr*)&addr, alen) == 0) return 0;
  if (argv[1][0] != '@') unlink(argv[1]);
  umask(077);
  if (bind(s, (struct sockaddr*)&addr, alen) != 0 || listen(s, 16) != 0) {
    fprintf(stderr, "regfs-fd-holder: cannot listen on %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  // Ready: the parent waits for this line before it sends the first PUT.
  printf("ready\n");
  fflush(stdout);
  int had_any = 0;
  for (;;) {
    struct pollfd p[1 + MAX_NAMES * REGFS_MAX_FDS];
    size_t np = 0, owner[MAX_NAMES * REGFS_MAX_FDS];
    p[np++] = (struct pollfd){.fd = s, .events = POLLIN};
    for (size_t i = 0; i < nheld; i++)
      for (size_t k = 0; k < table[i].nfds; k++) {
        owner[np - 1] = i;
        // No events asked: only POLLERR/POLLHUP wake us (a dead FUSE connection), never a
        // pending request, which is the next daemon's to read.
        p[np++] = (struct pollfd){.fd = table[i].fds[k], .events = 0};
      }
    int r = poll(p, np, had_any ? -1 : 10000);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return 1;
    if (r == 0 && !had_any) break;
    for (size_t j = np; j-- > 1;)
      if (p[j].revents & (POLLERR | POLLHUP | POLLNVAL)) {
        ssize_t i = (ssize_t)owner[j - 1];
        if ((size_t)i < nheld) drop((size_t)i);
        break;  // indexes moved; poll again
      }
    if (p[0].revents & POLLIN) {
      int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
      if (c >= 0) {
        serve_one(c);
        close(c);
      }
    }
    if (nheld > 0) had_any = 1;
    if (had_any && nheld == 0) break;
  }
  if (argv[1][0] != '@') unlink(argv[1]);
  return 0;
}
