/* spawn.c -- see spawn.h. */
#define _GNU_SOURCE
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void hk_drain(int fd, char *buf, size_t *len, int *open_flag) {
  char tmp[4096];
  ssize_t got = read(fd, tmp, sizeof tmp);
  if (got < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (got <= 0) {
    *open_flag = 0;
    return;
  }
  size_t room = HK_SPAWN_CAP - 1 - *len;
  size_t take = (size_t)got < room ? (size_t)got : room;
  memcpy(buf + *len, tmp, take);
  *len += take;
  buf[*len] = '\0';
}

int hk_spawn(char *const argv[], const char *const env_extra[], unsigned timeout_s,
             hk_spawn_result *r) {
  memset(r, 0, sizeof *r);
  size_t nenv = 0, nextra = 0;
  while (environ != NULL && environ[nenv] != NULL) nenv++;
  while (env_extra != NULL && env_extra[nextra] != NULL) nextra++;
  char **envp = calloc(nenv + nextra + 1, sizeof *envp);
  if (envp == NULL) return -1;
  size_t k = 0;
  for (size_t i = 0; i < nenv; i++)
    if (strncmp(environ[i], "HAKMEM_", 7) != 0) envp[k++] = environ[i];
  for (size_t i = 0; i < nextra; i++) envp[k++] = (char *)env_extra[i];
  envp[k] = NULL;

  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    free(envp);
    return -1;
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    free(envp);
    return -1;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(out[0]);
    close(out[1]);
    close(err[0]);
    close(err[1]);
    free(envp);
    errno = e;
    return -1;
  }
  if (pid == 0) {
    /* Only async-signal-safe calls between fork and execve. */
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    dup2(out[1], 1);
    dup2(err[1], 2);
    alarm(timeout_s);
    execve(argv[0], argv, envp);
    static const char msg[] = "hk_spawn: execve failed\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
  }
  free(envp);
  close(out[1]);
  close(err[1]);
  int out_open = 1, err_open = 1;
  while (out_open || err_open) {
    struct pollfd fds[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (out_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
      hk_drain(out[0], r->out, &r->out_len, &out_open);
    if (err_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
      hk_drain(err[0], r->err, &r->err_len, &err_open);
  }
  close(out[0]);
  close(err[0]);
  while (waitpid(pid, &r->status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return 0;
}

const char *hk_spawn_describe(const hk_spawn_result *r, char *buf, size_t n) {
  if (WIFEXITED(r->status))
    snprintf(buf, n, "exit %d", WEXITSTATUS(r->status));
  else if (WIFSIGNALED(r->status))
    snprintf(buf, n, "signal %d (%s)", WTERMSIG(r->status), strsignal(WTERMSIG(r->status)));
  else
    snprintf(buf, n, "status 0x%x", (unsigned)r->status);
  return buf;
}

size_t hk_count_lines(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\n') c++;
  return c;
}
