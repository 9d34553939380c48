/* block.h -- the two words of a free block: its link and its key, as every
 * list (thread cache, slab lists, remote chains, quarantine) writes and
 * checks them.
 *
 * Default build: the link is the plain next pointer, the key the block's
 * address plus the list's salt (hk_types.h): a double free or a write after
 * free that changes the key is caught, but a write to the link alone is
 * followed (the classic free-list poisoning).
 *
 * Hardened build (HK_HARDENED): the link is stored encoded and the key is
 * bound to the stored link, both through a secret: the SuperSlab's for slab
 * lists and remote chains (every block of such a list is of that SuperSlab),
 * the heap's for its thread caches and quarantine (a cache mixes SuperSlabs;
 * the heap's secret sits beside the cache head, so the pop loads no
 * SuperSlab header). With sec the secret, b the block, n its successor:
 *     word 0 = n ^ sec ^ b                       (NULL is no longer 0)
 *     word 1 = rotl(word 0, 32) ^ sec ^ salt
 * A write to either word without the secret fails the key check (2^-64),
 * so a forged link is reported before it is followed; a successor that
 * passes is range-checked where the list's range is known (a slab list:
 * a carved block of the same slab; a remote chain: the same SuperSlab).
 * Protects against writes (overflows, writes after free), not against a
 * program that can also read free blocks: one block's words reveal sec. */
#ifndef HK_BLOCK_H
#define HK_BLOCK_H

#include "hk_types.h"

#ifdef HK_HARDENED
/* A list whose next link is forged or overwritten: one line, abort (diag.c). */
__attribute__((noreturn, cold)) void hk_block_corrupt(const void *b);

HK_INLINE uintptr_t hk_ss_secret(const void *b) {
  return ((const hk_superslab *)((uintptr_t)b & ~(uintptr_t)HK_SS_MASK))->secret;
}
HK_INLINE uintptr_t hk_heap_secret(const hk_heap *h) { return h->secret; }
HK_INLINE uintptr_t hk_block_mix(uintptr_t w, uintptr_t sec, uintptr_t salt) {
  return ((w << 32) | (w >> 32)) ^ sec ^ salt;
}
#else
#define hk_ss_secret(b) ((uintptr_t)0)
#define hk_heap_secret(h) ((uintptr_t)0)
#endif

/* Put b on a list (secret sec, key salt) in front of next. */
HK_INLINE void hk_block_link(hk_block *b, hk_block *next, uintptr_t sec, uintptr_t salt) {
#ifdef HK_HARDENED
  uintptr_t w = (uintptr_t)next ^ sec ^ (uintptr_t)b;
  b->next = (hk_block *)w;
  b->key = hk_block_mix(w, sec, salt);
#else
  (void)sec;
  b->key = (uintptr_t)b + salt;
  b->next = next;
#endif
}

/* Does b carry the key of a list (sec, salt)? Every block on that list does. */
HK_INLINE bool hk_block_keyed(const hk_block *b, uintptr_t sec, uintptr_t salt) {
#ifdef HK_HARDENED
  return b->key == hk_block_mix((uintptr_t)b->next, sec, salt);
#else
  (void)sec;
  return b->key == (uintptr_t)b + salt;
#endif
}

/* b's successor; b's key already checked (hk_block_keyed). */
HK_INLINE hk_block *hk_block_next(const hk_block *b, uintptr_t sec) {
#ifdef HK_HARDENED
  return (hk_block *)((uintptr_t)b->next ^ sec ^ (uintptr_t)b);
#else
  (void)sec;
  return b->next;
#endif
}

/* One step of a walk that must not follow a forged link: hardened builds
 * check b's key first and abort on a mismatch; the default build reads the
 * link (its walks are bounded by a count instead). */
HK_INLINE hk_block *hk_block_step(const hk_block *b, uintptr_t sec, uintptr_t salt) {
#ifdef HK_HARDENED
  if (HK_UNLIKELY(!hk_block_keyed(b, sec, salt))) hk_block_corrupt(b);
#else
  (void)salt;
#endif
  return hk_block_next(b, sec);
}

/* End a list at b (a block already on it, its key checked): its link
 * becomes NULL. */
HK_INLINE void hk_block_end(hk_block *b, uintptr_t sec, uintptr_t salt) {
#ifdef HK_HARDENED
  hk_block_link(b, NULL, sec, salt);
#else
  (void)sec;
  (void)salt;
  b->next = NULL;
#endif
}

/* Remote chains (remote/remote.c): a link without a key, since a chain is
 * read only by the owner, once; hardened builds encode it with the
 * SuperSlab's secret and check that it stays inside the SuperSlab. */
HK_INLINE void hk_chain_link(hk_block *b, hk_block *next) {
#ifdef HK_HARDENED
  b->next = (hk_block *)((uintptr_t)next ^ hk_ss_secret(b) ^ (uintptr_t)b);
#else
  b->next = next;
#endif
}

HK_INLINE hk_block *hk_chain_next(const hk_block *b) {
#ifdef HK_HARDENED
  uintptr_t n = (uintptr_t)b->next ^ hk_ss_secret(b) ^ (uintptr_t)b;
  if (HK_UNLIKELY(n != 0 && ((n ^ (uintptr_t)b) & ~(uintptr_t)HK_SS_MASK) != 0)) hk_block_corrupt(b);
  return (hk_block *)n;
#else
  return b->next;
#endif
}

/* The prefetch hint of a remote chain's block (HK_REMOTE_AHEAD): a block
 * further down the chain, kept in the key word, which a chain does not use.
 * Not when the word holds a key: a block that is already free (a double
 * free) keeps it, so the owner's reclaim still sees that the block was on a
 * list. A key is b plus a salt of at least 2^28 (hk_types.h), where a hint is
 * a block of b's own SuperSlab, so no hint reads as one.
 * Only a hint: the owner prefetches it and never follows it; a stale or
 * garbage one costs a useless prefetch. Hardened builds write it always:
 * their free has checked the block's canary tail before it reaches a chain
 * (core/harden.h), which catches a block already free there, so no key
 * need survive; and they encode it with the SuperSlab's secret, so a
 * use-after-free read of a freed block learns no heap address from it. */
HK_INLINE void hk_chain_hint(hk_block *b, hk_block *ahead) {
#ifdef HK_HARDENED
  b->key = (uintptr_t)ahead ^ hk_ss_secret(b);
#else
  uintptr_t k = b->key - (uintptr_t)b;
  if (HK_LIKELY(k != HK_BLOCK_KEY_SALT && k != HK_TC_KEY_SALT)) b->key = (uintptr_t)ahead;
#endif
}

HK_INLINE void hk_chain_prefetch(const hk_block *b) {
  __builtin_prefetch((const void *)(b->key ^ hk_ss_secret(b)), 0);
}

/* A key mismatch on a list: in hardened builds, whose canary tail catches
 * every double free at the free (core/harden.h; two frees racing in two
 * threads, at reclaim by the keys) before a block reaches a list twice,
 * only a write can cause it, and that aborts; the default build goes on to report a double free. */
#ifdef HK_HARDENED
#define HK_HARDENED_CORRUPT(b) hk_block_corrupt(b)
#else
#define HK_HARDENED_CORRUPT(b) ((void)0)
#endif

/* Hand b out: clear its key so a second turn on a list is told apart. */
HK_INLINE void hk_block_unkey(hk_block *b) { b->key = 0; }

#endif /* HK_BLOCK_H */
