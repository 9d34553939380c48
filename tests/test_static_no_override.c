/* test_static_no_override.c -- libhakmem.a provides the hak_ API and
 * overrides nothing (include/hakmem.h): a program linked only to it keeps
 * the C library's (or the sanitizer's) malloc. */
#include <stdlib.h>

#include "hk_test.h"

Test(static_lib, malloc_is_not_overridden_by_static_library) {
  void *p = malloc(hk_opaque(16));
  cr_assert(p != NULL);
  cr_assert(!hak_owns(p), "malloc(16) = %p is HAKMEM's although only libhakmem.a is linked", p);
  free(p);
  void *big = malloc(hk_opaque(HK_MIB));
  cr_assert(big != NULL && !hak_owns(big), "malloc(1 MiB) is HAKMEM's although only libhakmem.a is linked");
  free(big);
}

Test(static_lib, hak_malloc_is_hakmem) {
  void *p = hak_malloc(hk_opaque(16));
  cr_assert(p != NULL);
  cr_assert(hak_owns(p), "hak_malloc(16) = %p is not HAKMEM's", p);
  cr_assert(hak_usable_size(p) >= 16);
  hak_free(p);
  void *big = hak_malloc(hk_opaque(HK_MIB));
  cr_assert(big != NULL && hak_owns(big));
  hak_free(big);
}

Test(static_lib, hak_owns_rejects_foreign_memory) {
  int on_stack = 0;
  static int in_data;
  cr_assert(!hak_owns(&on_stack));
  cr_assert(!hak_owns(&in_data));
  cr_assert(!hak_owns(NULL));
  cr_assert(!hak_owns((void *)(uintptr_t)-4096));
}
