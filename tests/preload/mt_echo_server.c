/* mt_echo_server.c -- a small multithreaded TCP server used by
 * tests/preload/run_preload.sh to exercise an allocator loaded with LD_PRELOAD.
 *
 *   mt_echo_server PORTFILE [WATCHDOG_SECONDS]
 *
 * Listens on 127.0.0.1 on an ephemeral port and writes the port number to
 * PORTFILE (atomically, via rename). One thread per connection reads framed
 * requests (see mt_echo_common.h); each request is handed through a queue to
 * a pool of worker threads which build the reply (payload reversed + FNV-1a
 * checksum) in a buffer grown with realloc. Memory crosses threads both ways:
 * request buffers and "scrap" allocations made by the connection thread are
 * freed by a worker (always for scraps, every other request for the request
 * buffer); reply buffers and "keep" buffers made by a worker are freed by the
 * connection thread.
 *
 * A request whose length is MT_ECHO_QUIT makes the server stop accepting,
 * join every thread and print a deterministic summary on stdout:
 *   server: conns=C requests=R bytes=B sum=S
 * (S is the wrapping sum of the checksums of all payloads, so it does not
 * depend on scheduling). An alarm() watchdog kills the process if it runs
 * longer than WATCHDOG_SECONDS (default 60).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt_echo_common.h"

#define MAX_CONNS 256
#define NWORKERS 4
#define NKEEP 8

typedef struct conn conn_t;

typedef struct job {
  struct job *next;
  conn_t *conn;
  unsigned char *req; /* allocated by the connection thread */
  uint32_t len;
  uint64_t seq;
  int worker_frees_req;
  void **scraps; /* allocated by the connection thread, freed by the worker */
  int nscraps;
  unsigned char *reply; /* allocated by the worker, freed by the connection thread */
  size_t reply_len;
  unsigned char *keep; /* allocated by the worker, freed later by the connection thread */
  int done;
} job_t;

struct conn {
  int fd;
  int index;
  pthread_t tid;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned char *keep[NKEEP];
  int nkeep;
};

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static job_t *q_head, *q_tail;
static int q_stop;

static atomic_int g_quit;
static atomic_ullong g_requests, g_bytes, g_sum;
static atomic_int g_errors;

static void die(const char *what) {
  perror(what);
  exit(2);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) die("malloc");
  return p;
}

static void q_push(job_t *j) {
  pthread_mutex_lock(&q_mu);
  j->next = NULL;
  if (q_tail) q_tail->next = j; else q_head = j;
  q_tail = j;
  pthread_cond_signal(&q_cv);
  pthread_mutex_unlock(&q_mu);
}

static job_t *q_pop(void) {
  pthread_mutex_lock(&q_mu);
  while (!q_head && !q_stop) pthread_cond_wait(&q_cv, &q_mu);
  job_t *j = q_head;
  if (j) {
    q_head = j->next;
    if (!q_head) q_tail = NULL;
  }
  pthread_mutex_unlock(&q_mu);
  return j;
}

static void *worker_main(void *arg) {
  (void)arg;
  job_t *j;
  while ((j = q_pop()) != NULL) {
    uint64_t sum = mt_fnv1a(MT_FNV_INIT, j->req, j->len);
    /* Build the reply in a buffer grown by realloc in uneven steps. */
    size_t want = (size_t)j->len + 8, cap = 16 + (j->seq % 61), used = 0;
    unsigned char *r = xmalloc(cap);
    while (used < j->len) {
      size_t chunk = 1 + (size_t)((j->seq * 7 + used) % 1531);
      if (chunk > j->len - used) chunk = j->len - used;
      if (used + chunk > cap) {
        cap = (used + chunk) + (used + chunk) / 2;
        unsigned char *nr = realloc(r, cap);
        if (!nr) die("realloc");
        r = nr;
      }
      for (size_t k = 0; k < chunk; k++) r[used + k] = j->req[j->len - 1 - (used + k)];
      used += chunk;
    }
    if (cap < want) {
      unsigned char *nr = realloc(r, want);
      if (!nr) die("realloc");
      r = nr;
    }
    mt_put_u64(r + j->len, sum);
    /* Shrink to fit some of the time. */
    if (j->seq % 3 == 0) {
      unsigned char *nr = realloc(r, want);
      if (!nr) die("realloc");
      r = nr;
    }
    /* A small long-lived buffer the connection thread frees later. */
    size_t klen = 1 + (size_t)(sum % 700);
    j->keep = xmalloc(klen);
    memset(j->keep, (int)(sum & 0xff), klen);
    /* Cross-thread frees of what the connection thread allocated. */
    for (int i = 0; i < j->nscraps; i++) free(j->scraps[i]);
    free(j->scraps);
    j->scraps = NULL;
    if (j->worker_frees_req) {
      free(j->req);
      j->req = NULL;
    }
    atomic_fetch_add(&g_requests, 1);
    atomic_fetch_add(&g_bytes, j->len);
    atomic_fetch_add(&g_sum, sum);

    conn_t *c = j->conn;
    pthread_mutex_lock(&c->mu);
    j->reply = r;
    j->reply_len = want;
    j->done = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
  }
  return NULL;
}

static void *conn_main(void *arg) {
  conn_t *c = arg;
  uint64_t seq = (uint64_t)c->index * 1000003u;
  for (;;) {
    unsigned char hdr[4];
    int rc = mt_read_full(c->fd, hdr, 4);
    if (rc == 0) break;
    if (rc < 0) {
      fprintf(stderr, "server: read header failed\n");
      atomic_fetch_add(&g_errors, 1);
      break;
    }
    uint32_t len = mt_get_u32(hdr);
    if (len == MT_ECHO_QUIT) {
      atomic_store(&g_quit, 1);
      break;
    }
    if (len > MT_ECHO_MAX_PAYLOAD) {
      fprintf(stderr, "server: oversized request %u\n", len);
      atomic_fetch_add(&g_errors, 1);
      break;
    }
    job_t *j = calloc(1, sizeof *j);
    if (!j) die("calloc");
    j->conn = c;
    j->len = len;
    j->seq = seq++;
    j->req = xmalloc(len ? len : 1);
    if (len && mt_read_full(c->fd, j->req, len) != 1) {
      fprintf(stderr, "server: short payload\n");
      atomic_fetch_add(&g_errors, 1);
      free(j->req);
      free(j);
      break;
    }
    /* Scraps: varied sizes, some freed here, the rest by a worker. */
    uint64_t s = j->seq ^ len;
    int n = 2 + (int)(mt_splitmix(&s) % 12);
    j->scraps = xmalloc(sizeof(void *) * (size_t)n);
    for (int i = 0; i < n; i++) {
      uint64_t x = mt_splitmix(&s);
      size_t sz;
      switch (x % 8) {
        case 0: sz = 1 + (x >> 8) % 16; break;
        case 1: case 2: case 3: sz = 16 + (x >> 8) % 256; break;
        case 4: case 5: sz = 256 + (x >> 8) % 4096; break;
        case 6: sz = 4096 + (x >> 8) % 65536; break;
        default: sz = 65536 + (x >> 8) % (512 * 1024); break;
      }
      unsigned char *p = (x & 0x100) ? calloc(1, sz) : xmalloc(sz);
      if (!p) die("calloc");
      p[0] = (unsigned char)x;
      p[sz - 1] = (unsigned char)(x >> 8);
      if (x & 0x200) {
        unsigned char *q = realloc(p, sz * 2 + 1);
        if (!q) die("realloc");
        p = q;
      }
      j->scraps[i] = p;
    }
    j->nscraps = n;
    while (j->nscraps > 1 && (mt_splitmix(&s) & 1)) free(j->scraps[--j->nscraps]);
    j->worker_frees_req = (int)(j->seq & 1);

    q_push(j);
    pthread_mutex_lock(&c->mu);
    while (!j->done) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);

    if (!j->worker_frees_req) free(j->req);
    unsigned char rh[4];
    mt_put_u32(rh, (uint32_t)j->reply_len);
    int werr = mt_write_full(c->fd, rh, 4, MSG_MORE) || mt_write_full(c->fd, j->reply, j->reply_len, 0);
    free(j->reply);
    if (c->nkeep == NKEEP) {
      free(c->keep[0]);
      memmove(c->keep, c->keep + 1, sizeof(c->keep[0]) * (NKEEP - 1));
      c->nkeep--;
    }
    c->keep[c->nkeep++] = j->keep;
    free(j);
    if (werr) {
      fprintf(stderr, "server: write failed\n");
      atomic_fetch_add(&g_errors, 1);
      break;
    }
  }
  for (int i = 0; i < c->nkeep; i++) free(c->keep[i]);
  c->nkeep = 0;
  close(c->fd);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s PORTFILE [WATCHDOG_SECONDS]\n", argv[0]);
    return 2;
  }
  unsigned watchdog = argc == 3 ? (unsigned)atoi(argv[2]) : 60;
  alarm(watchdog ? watchdog : 60);
  signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) die("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0;
  if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
  if (listen(lfd, 128) < 0) die("listen");
  socklen_t slen = sizeof sa;
  if (getsockname(lfd, (struct sockaddr *)&sa, &slen) < 0) die("getsockname");

  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
  FILE *pf = fopen(tmp, "w");
  if (!pf) die("fopen portfile");
  fprintf(pf, "%u\n", (unsigned)ntohs(sa.sin_port));
  if (fclose(pf) != 0) die("fclose portfile");
  if (rename(tmp, argv[1]) != 0) die("rename portfile");

  pthread_t workers[NWORKERS];
  for (int i = 0; i < NWORKERS; i++)
    if (pthread_create(&workers[i], NULL, worker_main, NULL) != 0) die("pthread_create");

  conn_t *conns[MAX_CONNS];
  int nconns = 0;
  while (!atomic_load(&g_quit)) {
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};
    int pr = poll(&pfd, 1, 50);
    if (pr < 0 && errno != EINTR) die("poll");
    if (pr <= 0) continue;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      die("accept");
    }
    if (nconns == MAX_CONNS) {
      fprintf(stderr, "server: too many connections\n");
      atomic_fetch_add(&g_errors, 1);
      close(fd);
      continue;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn_t *c = calloc(1, sizeof *c);
    if (!c) die("calloc");
    c->fd = fd;
    c->index = nconns;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (pthread_create(&c->tid, NULL, conn_main, c) != 0) die("pthread_create");
    conns[nconns++] = c;
  }
  close(lfd);
  for (int i = 0; i < nconns; i++) {
    pthread_join(conns[i]->tid, NULL);
    pthread_mutex_destroy(&conns[i]->mu);
    pthread_cond_destroy(&conns[i]->cv);
    free(conns[i]);
  }
  pthread_mutex_lock(&q_mu);
  q_stop = 1;
  pthread_cond_broadcast(&q_cv);
  pthread_mutex_unlock(&q_mu);
  for (int i = 0; i < NWORKERS; i++) pthread_join(workers[i], NULL);

  printf("server: conns=%d requests=%llu bytes=%llu sum=%016llx\n", nconns,
         (unsigned long long)atomic_load(&g_requests), (unsigned long long)atomic_load(&g_bytes),
         (unsigned long long)atomic_load(&g_sum));
  int errs = atomic_load(&g_errors);
  if (errs) fprintf(stderr, "server: %d errors\n", errs);
  return errs ? 1 : 0;
}
