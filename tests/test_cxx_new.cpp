/* test_cxx_new.cpp -- C++'s operator new/delete, every variant, as
 * libhakmem.so exports them (src/api/operator_new.inc).
 *
 * Built twice: test_cxx_new links libhakmem.so, test_cxx_new_preload links
 * nothing of HAKMEM and runs under LD_PRELOAD (ctest sets it); both reach
 * the hak_ functions through dlsym, so the same checks run either way.
 * HK_EXPECT_SIZE_CHECK=1 in the environment (debug builds, the hardened
 * library) says that a wrong sized delete must be reported; otherwise it
 * must pass silently (release builds do not check).
 *
 * The operators are called by name (::operator new(n, ...)), never through
 * new-expressions the compiler may elide, and every pointer goes through
 * hak_owns, a call the compiler cannot see into. */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "hakmem.h"

namespace {

struct hak_fns {
  bool (*owns)(const void *);
  size_t (*usable)(const void *);
  void (*stats)(hak_stats_t *);
  void (*collect)(bool);
  void (*inject)(unsigned);
};
hak_fns H;

template <class F> void resolve_one(F &f, const char *name) {
  f = reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
  cr_assert_not_null(reinterpret_cast<void *>(f), "%s not found: is libhakmem.so linked or preloaded?", name);
}

void resolve() {
  resolve_one(H.owns, "hak_owns");
  resolve_one(H.usable, "hak_usable_size");
  resolve_one(H.stats, "hak_stats_get");
  resolve_one(H.collect, "hak_collect");
  resolve_one(H.inject, "hak_testing_inject_map_failures");
}

size_t invalid_frees() {
  hak_stats_t s;
  H.stats(&s);
  return s.invalid_frees;
}

bool size_check_expected() {
  const char *e = getenv("HK_EXPECT_SIZE_CHECK");
  return e != nullptr && strcmp(e, "1") == 0;
}

/* A size the compiler cannot fold (so no "allocation too large" warning and
 * no compile-time bad_array_new_length). */
size_t opaque(size_t n) {
  __asm__ volatile("" : "+r"(n));
  return n;
}

void check_block(void *p, size_t n, size_t align, const char *what) {
  cr_assert_not_null(p, "%s(%zu, align %zu) returned NULL", what, n, align);
  cr_assert(H.owns(p), "%s(%zu, align %zu) = %p is not HAKMEM's", what, n, align, p);
  cr_assert_eq((uintptr_t)p & (align - 1), 0u, "%s(%zu, align %zu) = %p misaligned", what, n, align, p);
  size_t u = H.usable(p);
  cr_assert_geq(u, n, "%s(%zu): usable %zu", what, n, u);
  memset(p, 0xa5, u); /* the whole usable size is ours to write */
}

const size_t sizes[] = {0, 1, 8, 16, 24, 100, 1000, 1024, 1025, 4000, 65536, 131072, 131073, 1u << 20, (5u << 20) + 3};
const size_t aligns[] = {1, 2, 8, 16, 32, 64, 128, 256, 4096, 8192, 65536, 1u << 21, 1u << 23};

/* Impossible sizes: above PTRDIFF_MAX, and near SIZE_MAX where size + any
 * padding overflows. */
const size_t impossible[] = {(size_t)PTRDIFF_MAX + 1, SIZE_MAX, SIZE_MAX - 4095, SIZE_MAX / 2 + 12345};

/* Each new with the deletes that may free its block: plain, sized (given
 * the requested and the usable size), nothrow. Function pointers keep each
 * pair visible as a pair: a conditional choosing between delete and
 * delete[] of one pointer confuses compilers' new/delete pairing (clang 14
 * emitted both calls). */
struct unaligned_variant {
  const char *name;
  void *(*alloc)(size_t);
  void (*del)(void *);
  void (*del_sized)(void *, size_t);
  void (*del_nothrow)(void *);
};
const unaligned_variant unaligned_variants[] = {
    {"new", [](size_t n) { return ::operator new(n); }, [](void *p) { ::operator delete(p); },
     [](void *p, size_t n) { ::operator delete(p, n); }, [](void *p) { ::operator delete(p, std::nothrow); }},
    {"new[]", [](size_t n) { return ::operator new[](n); }, [](void *p) { ::operator delete[](p); },
     [](void *p, size_t n) { ::operator delete[](p, n); }, [](void *p) { ::operator delete[](p, std::nothrow); }},
    {"new(nothrow)", [](size_t n) { return ::operator new(n, std::nothrow); }, [](void *p) { ::operator delete(p); },
     [](void *p, size_t n) { ::operator delete(p, n); }, [](void *p) { ::operator delete(p, std::nothrow); }},
    {"new[](nothrow)", [](size_t n) { return ::operator new[](n, std::nothrow); },
     [](void *p) { ::operator delete[](p); }, [](void *p, size_t n) { ::operator delete[](p, n); },
     [](void *p) { ::operator delete[](p, std::nothrow); }},
};

struct aligned_variant {
  const char *name;
  void *(*alloc)(size_t, std::align_val_t);
  void (*del)(void *, std::align_val_t);
  void (*del_sized)(void *, size_t, std::align_val_t);
  void (*del_nothrow)(void *, std::align_val_t);
};
const aligned_variant aligned_variants[] = {
    {"new(align)", [](size_t n, std::align_val_t a) { return ::operator new(n, a); },
     [](void *p, std::align_val_t a) { ::operator delete(p, a); },
     [](void *p, size_t n, std::align_val_t a) { ::operator delete(p, n, a); },
     [](void *p, std::align_val_t a) { ::operator delete(p, a, std::nothrow); }},
    {"new[](align)", [](size_t n, std::align_val_t a) { return ::operator new[](n, a); },
     [](void *p, std::align_val_t a) { ::operator delete[](p, a); },
     [](void *p, size_t n, std::align_val_t a) { ::operator delete[](p, n, a); },
     [](void *p, std::align_val_t a) { ::operator delete[](p, a, std::nothrow); }},
    {"new(align, nothrow)", [](size_t n, std::align_val_t a) { return ::operator new(n, a, std::nothrow); },
     [](void *p, std::align_val_t a) { ::operator delete(p, a); },
     [](void *p, size_t n, std::align_val_t a) { ::operator delete(p, n, a); },
     [](void *p, std::align_val_t a) { ::operator delete(p, a, std::nothrow); }},
    {"new[](align, nothrow)", [](size_t n, std::align_val_t a) { return ::operator new[](n, a, std::nothrow); },
     [](void *p, std::align_val_t a) { ::operator delete[](p, a); },
     [](void *p, size_t n, std::align_val_t a) { ::operator delete[](p, n, a); },
     [](void *p, std::align_val_t a) { ::operator delete[](p, a, std::nothrow); }},
};

} // namespace

TestSuite(cxx_new, .init = resolve);

/* Each of the twenty names libstdc++ exports resolves to libhakmem: the
 * program's own calls bind where RTLD_DEFAULT finds them. */
Test(cxx_new, every_operator_resolves_to_hakmem) {
  static const char *const names[] = {
      "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t",
      "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
      "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
      "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t",
      "_ZdaPvSt11align_val_tRKSt9nothrow_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t"};
  for (const char *name : names) {
    void *f = dlsym(RTLD_DEFAULT, name);
    cr_assert_not_null(f, "%s not exported", name);
    Dl_info info;
    cr_assert(dladdr(f, &info) != 0 && info.dli_fname != nullptr, "%s: dladdr failed", name);
    cr_assert(strstr(info.dli_fname, "libhakmem") != nullptr, "%s resolves to %s, not libhakmem", name,
              info.dli_fname);
  }
  /* And the address the program itself takes. */
  void *(*plain)(size_t) = &::operator new;
  Dl_info info;
  cr_assert(dladdr(reinterpret_cast<void *>(plain), &info) != 0 && strstr(info.dli_fname, "libhakmem") != nullptr);
}

/* Unaligned variants: every size, freed by every matching delete, sized ones
 * with the requested and with the usable size; nothing may be reported. */
Test(cxx_new, unaligned_variants_allocate_and_every_delete_accepts) {
  size_t before = invalid_frees();
  unsigned k = 0;
  for (size_t n : sizes) {
    for (const unaligned_variant &v : unaligned_variants) {
      void *p = v.alloc(n);
      check_block(p, n, 16, v.name);
      switch (k++ % 4) {
      case 0: v.del(p); break;
      case 1: v.del_sized(p, n); break;
      case 2: v.del_sized(p, H.usable(p)); break;
      default: v.del_nothrow(p); break;
      }
    }
  }
  cr_assert_eq(invalid_frees(), before, "a delete of a valid block was reported");
}

Test(cxx_new, aligned_variants_honour_every_power_of_two) {
  size_t before = invalid_frees();
  unsigned k = 0;
  for (size_t a : aligns) {
    std::align_val_t al{a};
    for (size_t n : sizes) {
      for (const aligned_variant &v : aligned_variants) {
        void *p = v.alloc(n, al);
        check_block(p, n, a, v.name);
        switch (k++ % 4) {
        case 0: v.del(p, al); break;
        case 1: v.del_sized(p, n, al); break;
        case 2: v.del_sized(p, H.usable(p), al); break;
        default: v.del_nothrow(p, al); break;
        }
      }
    }
  }
  cr_assert_eq(invalid_frees(), before, "an aligned delete of a valid block was reported");
}

Test(cxx_new, delete_of_null_does_nothing) {
  size_t before = invalid_frees();
  std::align_val_t al{64};
  ::operator delete(nullptr);
  ::operator delete[](nullptr);
  ::operator delete(nullptr, size_t{16});
  ::operator delete[](nullptr, size_t{16});
  ::operator delete(nullptr, std::nothrow);
  ::operator delete[](nullptr, std::nothrow);
  ::operator delete(nullptr, al);
  ::operator delete[](nullptr, al);
  ::operator delete(nullptr, size_t{16}, al);
  ::operator delete[](nullptr, size_t{16}, al);
  ::operator delete(nullptr, al, std::nothrow);
  ::operator delete[](nullptr, al, std::nothrow);
  cr_assert_eq(invalid_frees(), before);
}

Test(cxx_new, nothrow_new_returns_null_on_impossible_size) {
  for (size_t n : impossible) {
    n = opaque(n);
    cr_assert_null(::operator new(n, std::nothrow), "new(%zu, nothrow)", n);
    cr_assert_null(::operator new[](n, std::nothrow), "new[](%zu, nothrow)", n);
    for (size_t a : {size_t{64}, size_t{1} << 21}) {
      cr_assert_null(::operator new(n, std::align_val_t{a}, std::nothrow), "new(%zu, align %zu, nothrow)", n, a);
      cr_assert_null(::operator new[](n, std::align_val_t{a}, std::nothrow), "new[](%zu, align %zu, nothrow)", n, a);
    }
  }
  /* Not a power of two: NULL, as libstdc++'s own. */
  for (size_t a : {size_t{0}, size_t{3}, size_t{48}}) {
    cr_assert_null(::operator new(opaque(16), std::align_val_t{opaque(a)}, std::nothrow), "align %zu", a);
    cr_assert_null(::operator new[](opaque(16), std::align_val_t{opaque(a)}, std::nothrow), "align %zu", a);
  }
}

/* bad_alloc unwinds out of HAKMEM's C frames into this catch. */
Test(cxx_new, throwing_new_throws_bad_alloc_on_impossible_size) {
  int caught = 0, expected = 0;
  for (size_t n : impossible) {
    n = opaque(n);
    expected += 6;
    try { ::operator delete(::operator new(n)); } catch (const std::bad_alloc &) { caught++; }
    try { ::operator delete[](::operator new[](n)); } catch (const std::bad_alloc &) { caught++; }
    for (size_t a : {size_t{64}, size_t{1} << 21}) {
      try { ::operator delete(::operator new(n, std::align_val_t{a}), std::align_val_t{a}); } catch (const std::bad_alloc &) { caught++; }
      try { ::operator delete[](::operator new[](n, std::align_val_t{a}), std::align_val_t{a}); } catch (const std::bad_alloc &) { caught++; }
    }
  }
  for (size_t a : {size_t{0}, size_t{3}, size_t{48}}) {
    expected++;
    try { ::operator delete(::operator new(opaque(16), std::align_val_t{opaque(a)})); } catch (const std::bad_alloc &) { caught++; }
  }
  cr_assert_eq(caught, expected);
  /* The heap is fine afterwards. */
  void *p = ::operator new(100);
  check_block(p, 100, 16, "new after bad_alloc");
  ::operator delete(p, size_t{100});
}

namespace {
std::atomic<int> handler_calls;
void *reserve;

/* What a new_handler is for: free a reserve so that the retry can succeed,
 * and uninstall itself. The reserve stands for memory; the failure comes
 * from mapping failures injected into HAKMEM, which the handler turns off. */
void freeing_handler() {
  handler_calls++;
  ::operator delete(reserve);
  reserve = nullptr;
  H.inject(0);
  std::set_new_handler(nullptr);
}

void counting_handler() {
  if (++handler_calls == 3) std::set_new_handler(nullptr);
}

void throwing_handler() {
  handler_calls++;
  throw std::bad_alloc();
}
} // namespace

Test(cxx_new, new_handler_frees_a_reserve_and_the_allocation_succeeds) {
  const size_t n = 64u << 20; /* a large block: its own, fresh mapping */
  for (int variant = 0; variant < 4; variant++) {
    H.collect(true); /* no cached mapping may serve it */
    reserve = ::operator new(1000);
    handler_calls = 0;
    std::set_new_handler(freeing_handler);
    H.inject(1000000);
    void *p;
    std::align_val_t al{size_t{1} << 21};
    switch (variant) {
    case 0: p = ::operator new(opaque(n)); break;
    case 1: p = ::operator new(opaque(n), std::nothrow); break;
    case 2: p = ::operator new[](opaque(n), al); break;
    default: p = ::operator new[](opaque(n), al, std::nothrow); break;
    }
    H.inject(0);
    cr_assert_eq(handler_calls.load(), 1, "variant %d: the handler ran %d times", variant, handler_calls.load());
    cr_assert_null(reserve);
    cr_assert_null(reinterpret_cast<void *>(std::get_new_handler()));
    check_block(p, n, variant >= 2 ? size_t{1} << 21 : 16, "new with a new_handler");
    ::operator delete(p);
  }
}

/* The loop calls the handler until it uninstalls itself, then throws (or
 * returns NULL). */
Test(cxx_new, new_handler_loop_runs_until_the_handler_is_gone) {
  size_t n = opaque(SIZE_MAX / 2 + 1);
  handler_calls = 0;
  std::set_new_handler(counting_handler);
  bool threw = false;
  try { ::operator delete(::operator new(n)); } catch (const std::bad_alloc &) { threw = true; }
  cr_assert(threw);
  cr_assert_eq(handler_calls.load(), 3);
  handler_calls = 0;
  std::set_new_handler(counting_handler);
  cr_assert_null(::operator new(n, std::align_val_t{256}, std::nothrow));
  cr_assert_eq(handler_calls.load(), 3);
}

/* A handler may throw bad_alloc: throwing new lets it through, nothrow new
 * turns it into NULL (it is noexcept: letting it out would terminate). */
Test(cxx_new, throwing_new_handler_gives_nothrow_new_null) {
  size_t n = opaque(SIZE_MAX / 2 + 1);
  std::set_new_handler(throwing_handler);
  handler_calls = 0;
  cr_assert_null(::operator new(n, std::nothrow));
  cr_assert_null(::operator new[](n, std::nothrow));
  cr_assert_null(::operator new(n, std::align_val_t{4096}, std::nothrow));
  cr_assert_null(::operator new[](n, std::align_val_t{4096}, std::nothrow));
  cr_assert_eq(handler_calls.load(), 4);
  bool threw = false;
  try { ::operator delete(::operator new(n)); } catch (const std::bad_alloc &) { threw = true; }
  cr_assert(threw);
  cr_assert_eq(handler_calls.load(), 5);
  std::set_new_handler(nullptr);
}

namespace {
struct base {
  long a;
};
struct derived : base {
  char more[200];
};

/* In a child with stderr on a pipe: three wrong sized deletes, a correct
 * one. Returns what the child wrote to stderr; its exit status in *status. */
std::string run_wrong_sized_deletes(int *status) {
  int fd[2];
  cr_assert_eq(pipe(fd), 0);
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    dup2(fd[1], 2);
    close(fd[0]);
    /* A Base pointer deleted without a virtual destructor: sized delete
     * with sizeof(base) for a block of sizeof(derived). */
    base *b = new derived;
    __asm__ volatile("" : "+r"(b));
    delete b;
    void *p = ::operator new(100);
    ::operator delete(p, opaque(4000)); /* bigger than the block */
    void *q = ::operator new(300, std::align_val_t{64});
    ::operator delete(q, opaque(1), std::align_val_t{64}); /* a smaller class */
    void *r = ::operator new(500000);
    ::operator delete(r, opaque(500000 - 3)); /* within the page: fine */
    _exit(0);
  }
  close(fd[1]);
  std::string err;
  char buf[4096];
  ssize_t got;
  while ((got = read(fd[0], buf, sizeof buf)) > 0) err.append(buf, (size_t)got);
  close(fd[0]);
  cr_assert_eq(waitpid(pid, status, 0), pid);
  return err;
}

size_t count(const std::string &s, const char *what) {
  size_t c = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) c++;
  return c;
}
} // namespace

/* Debug and hardened builds check sized delete and report through the
 * invalid-free policy (default: one line, then the block is freed);
 * release builds do not check. */
Test(cxx_new, wrong_sized_delete_is_reported_when_checked) {
  int status;
  std::string err = run_wrong_sized_deletes(&status);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x, stderr: %s", status, err.c_str());
  if (size_check_expected()) {
    cr_assert_eq(count(err, "hakmem: invalid free of "), 3u, "stderr: %s", err.c_str());
    cr_assert_eq(count(err, "sized delete of 8 bytes"), 1u, "stderr: %s", err.c_str());
    cr_assert_eq(count(err, "sized delete of 4000 bytes"), 1u, "stderr: %s", err.c_str());
    cr_assert_eq(count(err, "sized delete of 1 bytes"), 1u, "stderr: %s", err.c_str());
  } else {
    cr_assert(err.empty(), "release build reported: %s", err.c_str());
  }
}

namespace {
struct alignas(128) wide {
  char c[300];
};
} // namespace

/* A program that overrides nothing: containers, strings, smart pointers,
 * over-aligned types and blocks deleted by other threads all go through
 * HAKMEM's operators. */
Test(cxx_new, ordinary_cxx_program_runs_on_hakmem) {
  std::vector<std::unique_ptr<std::map<int, std::string>>> made(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([t, &made] {
      for (int i = 0; i < 2; i++) {
        auto m = std::make_unique<std::map<int, std::string>>();
        for (int k = 0; k < 2000; k++) (*m)[k] = std::string(40 + k % 200, char('a' + (k + t) % 26));
        made[t * 2 + i] = std::move(m);
      }
    });
  }
  for (auto &th : threads) th.join();
  for (auto &m : made) {
    cr_assert_eq(m->size(), 2000u);
    cr_assert(H.owns(m.get()));
    cr_assert(H.owns(m->at(1999).data()));
  }
  /* Deleted by another thread than the one that allocated. */
  std::thread([&made] { made.clear(); }).join();

  std::vector<wide> v(1000);
  cr_assert(H.owns(v.data()));
  cr_assert_eq((uintptr_t)v.data() % 128, 0u);
  wide *w = new wide[7];
  cr_assert(H.owns(w) && (uintptr_t)w % 128 == 0);
  delete[] w;
  auto sp = std::make_shared<wide>();
  cr_assert(H.owns(sp.get()) && (uintptr_t)sp.get() % 128 == 0);
  std::unique_ptr<long[]> arr(new long[123456]);
  cr_assert(H.owns(arr.get()));
}
