/* helper_c_no_cxx.c -- a C program, linked to nothing of HAKMEM, run with
 * LD_PRELOAD=libhakmem.so (tests/check_no_cxx_runtime.sh). HAKMEM's C++
 * operators must not drag the C++ runtime into it: no libstdc++ or
 * libgcc_s mapped. With a C++ plugin's path as argv[1], it then dlopen()s
 * the plugin, which brings libstdc++ in after HAKMEM's weak references to
 * it were bound (to nothing): operator new's failure path must still find
 * std::bad_alloc and the new_handler (helper_cxx_plugin.cpp).
 * Exit 0 when all holds; otherwise a line on stderr and exit 1. */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what) {
  fprintf(stderr, "helper_c_no_cxx: %s\n", what);
  return 1;
}

/* 1 when a mapping's path names a C++ runtime library, 0 when none does,
 * -1 when the maps cannot be read. */
static int cxx_runtime_mapped(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (f == NULL) return -1;
  char line[4096];
  int found = 0;
  while (fgets(line, sizeof line, f) != NULL)
    if (strstr(line, "libstdc++") != NULL || strstr(line, "libgcc_s") != NULL || strstr(line, "libc++") != NULL) {
      fprintf(stderr, "helper_c_no_cxx: mapped: %s", line);
      found = 1;
    }
  fclose(f);
  return found;
}

int main(int argc, char **argv) {
  bool (*owns)(const void *) = (bool (*)(const void *))dlsym(RTLD_DEFAULT, "hak_owns");
  if (owns == NULL) return fail("hak_owns not found: run me with LD_PRELOAD=libhakmem.so");
  void *p = malloc(100);
  if (p == NULL || !owns(p)) return fail("malloc did not come from HAKMEM");
  free(p);
  int mapped = cxx_runtime_mapped();
  if (mapped != 0) return fail(mapped < 0 ? "cannot read /proc/self/maps" : "a C++ runtime is loaded into a C program");
  if (argc < 2) return 0;

  void *plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (plugin == NULL) return fail(dlerror());
  const char *(*check)(void) = (const char *(*)(void))dlsym(plugin, "hk_cxx_plugin_check");
  if (check == NULL) return fail("the plugin has no hk_cxx_plugin_check");
  const char *err = check();
  if (err != NULL) return fail(err);
  return 0;
}
