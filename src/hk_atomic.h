/* hk_atomic.h -- atomic helpers named by their memory order, so the order is
 * visible at every call site. Each non-relaxed call carries a comment naming
 * what it pairs with. */
#ifndef HK_ATOMIC_H
#define HK_ATOMIC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define hk_load_relaxed(p)      atomic_load_explicit((p), memory_order_relaxed)
#define hk_load_acquire(p)      atomic_load_explicit((p), memory_order_acquire)
#define hk_store_relaxed(p, v)  atomic_store_explicit((p), (v), memory_order_relaxed)
#define hk_store_release(p, v)  atomic_store_explicit((p), (v), memory_order_release)
#define hk_xchg_relaxed(p, v)   atomic_exchange_explicit((p), (v), memory_order_relaxed)
#define hk_xchg_acq_rel(p, v)   atomic_exchange_explicit((p), (v), memory_order_acq_rel)
#define hk_xchg_acquire(p, v)   atomic_exchange_explicit((p), (v), memory_order_acquire)
#define hk_or_release(p, v)     atomic_fetch_or_explicit((p), (v), memory_order_release)
#define hk_or_relaxed(p, v)     atomic_fetch_or_explicit((p), (v), memory_order_relaxed)
#define hk_and_relaxed(p, v)    atomic_fetch_and_explicit((p), (v), memory_order_relaxed)
#define hk_and_release(p, v)    atomic_fetch_and_explicit((p), (v), memory_order_release)
#define hk_add_relaxed(p, v)    atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define hk_sub_relaxed(p, v)    atomic_fetch_sub_explicit((p), (v), memory_order_relaxed)
/* Weak CAS, acq_rel on success, relaxed on failure (the caller retries). */
#define hk_cas_weak_acq_rel(p, expp, v) \
  atomic_compare_exchange_weak_explicit((p), (expp), (v), memory_order_acq_rel, memory_order_relaxed)
/* Weak CAS, acq_rel on success, acquire on failure: for loops that read
 * through the reloaded value before they retry (the tagged stack's pop reads
 * the reloaded top node's link, core/tstack.h). */
#define hk_cas_weak_acq_rel_acq(p, expp, v) \
  atomic_compare_exchange_weak_explicit((p), (expp), (v), memory_order_acq_rel, memory_order_acquire)
#define hk_cas_weak_release(p, expp, v) \
  atomic_compare_exchange_weak_explicit((p), (expp), (v), memory_order_release, memory_order_relaxed)
#define hk_cas_strong_acq_rel(p, expp, v) \
  atomic_compare_exchange_strong_explicit((p), (expp), (v), memory_order_acq_rel, memory_order_acquire)

#endif /* HK_ATOMIC_H */
