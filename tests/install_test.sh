#!/bin/sh
# install_test.sh BUILD_DIR SOURCE_DIR VERSION C_COMPILER CMAKE GENERATOR
#
# What a user of an installed HAKMEM gets: `cmake --install` into a fresh
# temporary prefix must lay out the versioned shared library with its soname
# links, libhakmem.a, hakmem.h, hakmem.pc, the CMake package and the hakmem
# command; then examples/threads.c is built against that prefix twice, with
# pkg-config and with find_package(hakmem) (shared and static), and each
# program must run, print its "owned by hakmem: yes" line with the version,
# and load the library from the prefix, not from the build tree.
set -eu
build=$1 src=$2 version=$3 cc=$4 cmake=$5 generator=$6
major=${version%%.*}
tmp=$(cd "$(mktemp -d)" && pwd -P)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "install_test: FAIL: $*" >&2; exit 1; }

"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
libdir=$(cd "$prefix" && ls -d lib*/ | head -n 1) && libdir=${libdir%/}

for f in "$libdir/libhakmem.so.$version" "$libdir/libhakmem.a" include/hakmem.h "$libdir/pkgconfig/hakmem.pc" \
         "$libdir/cmake/hakmem/hakmemConfig.cmake" "$libdir/cmake/hakmem/hakmemConfigVersion.cmake" \
         "$libdir/cmake/hakmem/hakmemTargets.cmake" "$libdir/libhakmem-hardened.so.$version" bin/hakmem \
         share/doc/hakmem/OPTIONS.md share/doc/hakmem/USER_GUIDE.md; do
  [ -f "$prefix/$f" ] || fail "$f is not installed"
done
[ "$(readlink "$prefix/$libdir/libhakmem.so.$major")" = "libhakmem.so.$version" ] || fail "libhakmem.so.$major is not a link to libhakmem.so.$version"
[ "$(readlink "$prefix/$libdir/libhakmem.so")" = "libhakmem.so.$major" ] || fail "libhakmem.so is not a link to libhakmem.so.$major"
[ ! -e "$prefix/include/hakmem_testing.h" ] || fail "hakmem_testing.h (tests only) is installed"
soname=$(readelf -d "$prefix/$libdir/libhakmem.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libhakmem.so.$major" ] || fail "soname is '$soname', expected libhakmem.so.$major"
echo "installed: $libdir/libhakmem.so.$version (soname $soname), libhakmem.a, hakmem.h, hakmem.pc, CMake package, bin/hakmem"

# check NAME PROGRAM: runs it, wants the example's success line, and
# (shared builds) the library from the prefix.
check() {
  out=$("$2") || fail "$1: exit $? (output: $out)"
  case $out in
    "hakmem $version: "*", intact, owned by hakmem: yes") ;;
    *) fail "$1 printed '$out'" ;;
  esac
  echo "$1: $out"
}
loads_from_prefix() {
  lib=$(ldd "$2" | sed -n 's/^[[:space:]]*libhakmem\.so\.[0-9]* => \([^ ]*\).*/\1/p')
  case $lib in
    "$prefix/"*) ;;
    *) fail "$1 loads libhakmem from '$lib', not from $prefix" ;;
  esac
}

# pkg-config, as the README shows it.
command -v pkg-config >/dev/null || fail "pkg-config is not installed (tools/deps.sh installs it)"
PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
export PKG_CONFIG_PATH
[ "$(pkg-config --modversion hakmem)" = "$version" ] || fail "pkg-config --modversion hakmem: $(pkg-config --modversion hakmem)"
# shellcheck disable=SC2046 # the flags are words
"$cc" -O2 -o "$tmp/threads_pc" "$src/examples/threads.c" $(pkg-config --cflags --libs hakmem) -pthread \
  "-Wl,-rpath,$prefix/$libdir" || fail "cc with pkg-config"
loads_from_prefix pkg-config "$tmp/threads_pc"
check pkg-config "$tmp/threads_pc"

# CMake: find_package(hakmem) from the prefix, shared and static.
"$cmake" -S "$src/examples" -B "$tmp/ex" -G "$generator" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
  >"$tmp/ex.log" 2>&1 || { cat "$tmp/ex.log"; fail "configuring examples/ with find_package(hakmem)"; }
"$cmake" --build "$tmp/ex" >>"$tmp/ex.log" 2>&1 || { cat "$tmp/ex.log"; fail "building examples/"; }
loads_from_prefix cmake "$tmp/ex/threads"
check "cmake hakmem::hakmem" "$tmp/ex/threads"
if ldd "$tmp/ex/threads_static" | grep -q libhakmem; then fail "threads_static loads libhakmem.so"; fi
check "cmake hakmem::hakmem_static" "$tmp/ex/threads_static"

# The installed command finds the installed library, also through a link.
ln -s "$prefix/bin/hakmem" "$tmp/hakmem-link"
want="hakmem $version ($prefix/$libdir/libhakmem.so.$major)"
[ "$("$prefix/bin/hakmem" version)" = "$want" ] || fail "bin/hakmem version: $("$prefix/bin/hakmem" version)"
[ "$("$tmp/hakmem-link" version)" = "$want" ] || fail "hakmem through a symlink: $("$tmp/hakmem-link" version)"
echo "bin/hakmem version: $want"
echo "install_test: OK"
