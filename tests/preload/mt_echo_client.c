/* mt_echo_client.c -- load generator for mt_echo_server (tests/preload).
 *
 *   mt_echo_client PORT [CONNS [REQUESTS_PER_CONN]]
 *
 * Opens CONNS (default 16) concurrent connections to 127.0.0.1:PORT, one
 * thread each, and sends REQUESTS_PER_CONN (default 200) requests with
 * deterministic payloads of varied sizes (1 byte .. 300 KB). Every reply is
 * checked (payload reversed + FNV-1a checksum). When all threads are done it
 * sends a QUIT request on a fresh connection (also after a failure, so the
 * server stops) and prints
 *   client: conns=C requests=R bytes=B digest=D
 * where D is computed from the replies in a fixed order. Exits 1 if any reply
 * was wrong or any connection failed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt_echo_common.h"

typedef struct {
  int index;
  int nreq;
  uint64_t digest;
  uint64_t bytes;
  int requests;
  int failed;
} cthread_t;

static unsigned short g_port;

static int connect_server(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(g_port);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static uint32_t payload_len(uint64_t *s) {
  uint64_t x = mt_splitmix(s);
  unsigned r = (unsigned)(x % 100);
  x >>= 8;
  if (r < 55) return 1 + (uint32_t)(x % 256);
  if (r < 85) return 257 + (uint32_t)(x % 3840);
  if (r < 97) return 4097 + (uint32_t)(x % 61440);
  return 65537 + (uint32_t)(x % 240000);
}

static void *client_main(void *arg) {
  cthread_t *t = arg;
  int fd = connect_server();
  if (fd < 0) {
    fprintf(stderr, "client %d: connect failed\n", t->index);
    t->failed = 1;
    return NULL;
  }
  uint64_t s = 0x1234567ull + (uint64_t)t->index * 0x10001ull;
  uint64_t digest = MT_FNV_INIT;
  for (int i = 0; i < t->nreq; i++) {
    uint32_t len = payload_len(&s);
    unsigned char *msg = malloc((size_t)len + 4);
    unsigned char *reply = malloc((size_t)len + 8);
    if (!msg || !reply) {
      fprintf(stderr, "client %d: out of memory\n", t->index);
      t->failed = 1;
      free(msg);
      free(reply);
      break;
    }
    mt_put_u32(msg, len);
    uint64_t ps = mt_splitmix(&s);
    for (uint32_t k = 0; k < len; k += 8) {
      uint64_t v = mt_splitmix(&ps);
      for (uint32_t b = 0; b < 8 && k + b < len; b++) msg[4 + k + b] = (unsigned char)(v >> (8 * b));
    }
    unsigned char rh[4];
    int ok = mt_write_full(fd, msg, (size_t)len + 4, 0) == 0 && mt_read_full(fd, rh, 4) == 1 &&
             mt_get_u32(rh) == len + 8 && mt_read_full(fd, reply, (size_t)len + 8) == 1;
    if (!ok) {
      fprintf(stderr, "client %d: request %d (len %u): transport error or bad length\n", t->index, i, len);
      t->failed = 1;
      free(msg);
      free(reply);
      break;
    }
    const unsigned char *payload = msg + 4;
    int bad = 0;
    for (uint32_t k = 0; k < len; k++)
      if (reply[k] != payload[len - 1 - k]) {
        bad = 1;
        break;
      }
    if (!bad && mt_get_u64(reply + len) != mt_fnv1a(MT_FNV_INIT, payload, len)) bad = 2;
    if (bad) {
      fprintf(stderr, "client %d: request %d (len %u): bad %s\n", t->index, i, len,
              bad == 1 ? "payload" : "checksum");
      t->failed = 1;
      free(msg);
      free(reply);
      break;
    }
    digest = mt_fnv1a(digest, reply, (size_t)len + 8);
    t->bytes += len;
    t->requests++;
    free(msg);
    free(reply);
  }
  close(fd);
  t->digest = digest;
  return NULL;
}

static int send_quit(void) {
  int fd = connect_server();
  if (fd < 0) return -1;
  unsigned char q[4];
  mt_put_u32(q, MT_ECHO_QUIT);
  int rc = mt_write_full(fd, q, 4, 0);
  close(fd);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: %s PORT [CONNS [REQUESTS_PER_CONN]]\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  g_port = (unsigned short)atoi(argv[1]);
  int nconn = argc > 2 ? atoi(argv[2]) : 16;
  int nreq = argc > 3 ? atoi(argv[3]) : 200;
  if (nconn < 1 || nconn > 128 || nreq < 1 || nreq > 100000) {
    fprintf(stderr, "client: bad arguments\n");
    return 2;
  }
  cthread_t *ts = calloc((size_t)nconn, sizeof *ts);
  pthread_t *tids = calloc((size_t)nconn, sizeof *tids);
  if (!ts || !tids) return 2;
  int failed = 0;
  for (int i = 0; i < nconn; i++) {
    ts[i].index = i;
    ts[i].nreq = nreq;
    if (pthread_create(&tids[i], NULL, client_main, &ts[i]) != 0) {
      fprintf(stderr, "client: pthread_create failed\n");
      ts[i].failed = 1;
      tids[i] = 0;
      failed = 1;
    }
  }
  uint64_t digest = MT_FNV_INIT, bytes = 0;
  int requests = 0;
  for (int i = 0; i < nconn; i++) {
    if (tids[i]) pthread_join(tids[i], NULL);
    failed |= ts[i].failed;
    unsigned char d[8];
    mt_put_u64(d, ts[i].digest);
    digest = mt_fnv1a(digest, d, 8);
    bytes += ts[i].bytes;
    requests += ts[i].requests;
  }
  if (send_quit() != 0) {
    fprintf(stderr, "client: could not send QUIT\n");
    failed = 1;
  }
  printf("client: conns=%d requests=%d bytes=%llu digest=%016llx\n", nconn, requests,
         (unsigned long long)bytes, (unsigned long long)digest);
  free(ts);
  free(tids);
  return failed ? 1 : 0;
}
