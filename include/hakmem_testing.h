/* hakmem_testing.h -- switches for HAKMEM's own tests and stress programs.
 * Not for production use: they make the allocator fail on purpose. */
#ifndef HAKMEM_TESTING_H
#define HAKMEM_TESTING_H

#include "hakmem.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Make each later request for a mapping from the OS fail with probability
 * per_million / 1e6 (0 turns injection off). Failing calls return NULL with
 * errno = ENOMEM, exactly as when the kernel refuses; the allocator must
 * stay consistent and recover once injection stops. Process-wide. */
HAK_API void hak_testing_inject_map_failures(unsigned per_million);
/* The same for giving pages back to the OS (madvise MADV_DONTNEED), as
 * when a seccomp filter refuses it: the pages keep their contents, and the
 * allocator must not count on them reading as zeros. */
HAK_API void hak_testing_inject_decommit_failures(unsigned per_million);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_TESTING_H */
