/* spawn.h -- run a helper program with a chosen environment and capture what
 * it says. HAKMEM reads its options once, at initialisation, before main, so
 * a test that wants another policy has to start a new process. */
#ifndef HK_SPAWN_H
#define HK_SPAWN_H

#include <stddef.h>

#define HK_SPAWN_CAP 16384

typedef struct hk_spawn_result {
  int status;                 /* as from waitpid */
  char out[HK_SPAWN_CAP];     /* stdout, NUL-terminated, truncated at the cap */
  size_t out_len;
  char err[HK_SPAWN_CAP];     /* stderr, likewise */
  size_t err_len;
} hk_spawn_result;

/* Runs argv[0] with argv. The environment is the test's own minus every
 * HAKMEM_* variable, plus each "NAME=value" of env_extra (NULL-terminated;
 * may be NULL). The child gets no core dumps and an alarm of timeout_s
 * seconds (a hung helper dies of SIGALRM instead of hanging the suite).
 * Returns 0, or -1 with errno set when the helper could not be started. */
int hk_spawn(char *const argv[], const char *const env_extra[], unsigned timeout_s,
             hk_spawn_result *r);

/* "exit 0", "exit 3", "signal 6 (Aborted)": for failure messages. */
const char *hk_spawn_describe(const hk_spawn_result *r, char *buf, size_t n);

/* Number of '\n' in s[0..n). */
size_t hk_count_lines(const char *s, size_t n);

#endif /* HK_SPAWN_H */
