#!/bin/sh
# check_no_cxx_runtime.sh LIB HELPER PLUGIN -- libhakmem.so exports C++'s
# operator new/delete yet keeps C programs free of the C++ runtime:
#  1. LIB has no DT_NEEDED on libstdc++ or libgcc_s;
#  2. a C program (HELPER) under LD_PRELOAD=LIB maps neither (it checks
#     /proc/self/maps itself), and the loader's trace shows none loaded;
#  3. the same program dlopen()ing a C++ plugin (PLUGIN) afterwards gets
#     std::bad_alloc and new_handler behaviour from HAKMEM's operators.
set -eu
lib=$1 helper=$2 plugin=$3
fail() { echo "check_no_cxx_runtime: $*" >&2; exit 1; }

needed=$(readelf -d "$lib" | grep NEEDED) || fail "readelf -d $lib found no NEEDED entry"
echo "$needed"
if echo "$needed" | grep -E 'libstdc\+\+|libgcc_s|libc\+\+'; then fail "$lib needs a C++ runtime"; fi

LD_PRELOAD=$lib "$helper" || fail "C program under LD_PRELOAD failed"
trace=$(LD_DEBUG=libs LD_PRELOAD=$lib "$helper" 2>&1) || fail "C program under LD_DEBUG=libs failed"
if echo "$trace" | grep -E 'libstdc\+\+|libgcc_s'; then fail "the loader loaded a C++ runtime"; fi

LD_PRELOAD=$lib "$helper" "$plugin" || fail "C++ plugin dlopen()ed by a C program failed"
echo "check_no_cxx_runtime: ok ($lib)"
