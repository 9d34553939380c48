/* helper_cxx_plugin.cpp -- a C++ module dlopen()ed by a C program under
 * LD_PRELOAD=libhakmem.so (helper_c_no_cxx.c): its libstdc++ arrives after
 * HAKMEM was relocated, so HAKMEM's weak references to the C++ runtime are
 * unbound and its operator new must look the runtime up when it fails. */
#include <dlfcn.h>
#include <stdint.h>

#include <new>

namespace {
int calls;
void uninstalling_handler() {
  calls++;
  std::set_new_handler(nullptr);
}
void throwing_handler() {
  calls++;
  throw std::bad_alloc();
}
size_t opaque(size_t n) {
  __asm__ volatile("" : "+r"(n));
  return n;
}
} // namespace

/* NULL when everything holds, else what did not. */
extern "C" __attribute__((visibility("default"))) const char *hk_cxx_plugin_check() {
  bool (*owns)(const void *) = reinterpret_cast<bool (*)(const void *)>(dlsym(RTLD_DEFAULT, "hak_owns"));
  if (owns == nullptr) return "hak_owns not found";
  void *p = ::operator new(opaque(100));
  if (!owns(p)) return "the plugin's operator new is not HAKMEM's";
  ::operator delete(p, size_t{100});

  size_t huge = opaque(SIZE_MAX / 2 + 1);
  bool threw = false;
  try { ::operator delete(::operator new(huge)); } catch (const std::bad_alloc &) { threw = true; }
  if (!threw) return "operator new did not throw std::bad_alloc";

  calls = 0;
  std::set_new_handler(uninstalling_handler);
  threw = false;
  try { ::operator delete(::operator new(huge, std::align_val_t{64})); } catch (const std::bad_alloc &) { threw = true; }
  if (!threw || calls != 1) return "the new_handler was not called once before bad_alloc";

  calls = 0;
  std::set_new_handler(throwing_handler);
  void *q = ::operator new(huge, std::nothrow);
  std::set_new_handler(nullptr);
  if (q != nullptr || calls != 1) return "nothrow new with a throwing handler did not return NULL";
  return nullptr;
}
