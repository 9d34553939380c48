/* mt_echo_common.h -- wire format and helpers shared by mt_echo_server and
 * mt_echo_client (tests/preload).
 *
 * Wire format (all integers big-endian):
 *   request : u32 len, len bytes of payload       (len == MT_ECHO_QUIT: stop)
 *   reply   : u32 rlen (= len + 8), the payload reversed, then the u64
 *             FNV-1a checksum of the (unreversed) payload, big-endian.
 */
#ifndef MT_ECHO_COMMON_H
#define MT_ECHO_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define MT_ECHO_QUIT 0xFFFFFFFFu
#define MT_ECHO_MAX_PAYLOAD (1u << 20)

static inline uint64_t mt_fnv1a(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}
#define MT_FNV_INIT 0xcbf29ce484222325ull

static inline void mt_put_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);  p[3] = (unsigned char)v;
}
static inline uint32_t mt_get_u32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void mt_put_u64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) { p[i] = (unsigned char)v; v >>= 8; }
}
static inline uint64_t mt_get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

/* Read exactly n bytes. Returns 1 on success, 0 on clean EOF before the first
 * byte, -1 on error or EOF in the middle. */
static inline int mt_read_full(int fd, void *buf, size_t n) {
  unsigned char *p = buf;
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) return got == 0 ? 0 : -1;
    got += (size_t)r;
  }
  return 1;
}

/* flags: 0 or MSG_MORE (more data follows at once; avoids Nagle stalls). */
static inline int mt_write_full(int fd, const void *buf, size_t n, int flags) {
  const unsigned char *p = buf;
  while (n > 0) {
    ssize_t r = send(fd, p, n, MSG_NOSIGNAL | flags);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* splitmix64: deterministic pseudo-random stream. */
static inline uint64_t mt_splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

#endif
