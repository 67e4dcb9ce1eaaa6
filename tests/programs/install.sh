#!/usr/bin/env bash
# make install into a temporary prefix installs exactly the expected files
# (the library with its soname links, the static library, the headers
# numamalloc.h and numamalloc.hpp, numamalloc.pc; where gfortran built them,
# the Fortran module in lib/fortran, libnumamalloc_fortran.a and
# numamalloc-fortran.pc, the CMake package config, the numamalloc command, the man
# pages), also into LIBDIR=PREFIX/lib64 (pkg-config, CMake and the command
# find it there; a program linked with pkg-config's rpath variable starts
# without LD_LIBRARY_PATH), and a program builds against that prefix with
# `pkg-config --cflags --libs numamalloc` and with CMake's
# find_package(numamalloc): linked with numamalloc::numamalloc and
# numamalloc::static, each runs with numamalloc as its malloc.  The same
# with DESTDIR (staged: the files name PREFIX, not the stage).  make
# uninstall then leaves no file behind.  The man pages render without a
# warning and name every environment variable of README.md and every
# function of numamalloc.h.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
for tool in pkg-config cmake groff; do
    command -v $tool >/dev/null || { echo "$tool not installed (make deps)"; exit 77; }
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# The version, from the header (the Makefile's VERSION must agree).
version=$(awk '/#define NUMAMALLOC_VERSION_(MAJOR|MINOR|PATCH)/ { v = v (v == "" ? "" : ".") $3 } END { print v }' \
    "$root/include/numamalloc.h")
major=${version%%.*}
echo "numamalloc $version"

make_in_root() {   # LOG ARGS...: make in the repository, output kept in LOG
    local log=$1; shift
    make -C "$root" BUILD="$build" "$@" >"$log" 2>&1 || { cat "$log"; bad "make $*"; return 1; }
}

# Every file and link under a tree, relative to it.
tree() { (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./||' | LC_ALL=C sort); }

fortran=0
[ -f "$build/libnumamalloc_fortran.a" ] && command -v gfortran >/dev/null && fortran=1
expected=$(LC_ALL=C sort <<EOF
bin/numamalloc
include/numamalloc.h
include/numamalloc.hpp
$([ $fortran = 1 ] && printf '%s\n' lib/fortran/numamalloc.mod lib/libnumamalloc_fortran.a lib/pkgconfig/numamalloc-fortran.pc)
lib/cmake/numamalloc/numamallocConfig.cmake
lib/cmake/numamalloc/numamallocConfigVersion.cmake
lib/libnumamalloc.a
lib/libnumamalloc.so
lib/libnumamalloc.so.$major
lib/libnumamalloc.so.$version
lib/pkgconfig/numamalloc.pc
share/man/man1/numamalloc.1
share/man/man3/numamalloc.3
EOF
)

# check_tree DIR PREFIX: the files of an installation of PREFIX found in DIR.
check_tree() {
    local dir=$1 prefix=$2 got
    got=$(tree "$dir")
    if [ "$got" != "$expected" ]; then
        bad "installed files in $dir differ from the expected list:"
        diff <(echo "$expected") <(echo "$got") | sed 's/^/      /'
    fi
    [ "$(readlink "$dir/lib/libnumamalloc.so")" = "libnumamalloc.so.$major" ] ||
        bad "lib/libnumamalloc.so -> '$(readlink "$dir/lib/libnumamalloc.so")', expected libnumamalloc.so.$major"
    [ "$(readlink "$dir/lib/libnumamalloc.so.$major")" = "libnumamalloc.so.$version" ] ||
        bad "lib/libnumamalloc.so.$major -> '$(readlink "$dir/lib/libnumamalloc.so.$major")'"
    [ -f "$dir/lib/libnumamalloc.so.$version" ] && [ ! -L "$dir/lib/libnumamalloc.so.$version" ] ||
        bad "lib/libnumamalloc.so.$version is not a file"
    local soname
    soname=$(readelf -d "$dir/lib/libnumamalloc.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [ "$soname" = "libnumamalloc.so.$major" ] || bad "soname '$soname', expected libnumamalloc.so.$major"
    cmp -s "$dir/include/numamalloc.h" "$root/include/numamalloc.h" || bad "installed header differs"
    cmp -s "$dir/include/numamalloc.hpp" "$root/include/numamalloc.hpp" || bad "installed numamalloc.hpp differs"
    cmp -s "$dir/lib/libnumamalloc.a" "$build/libnumamalloc.a" || bad "installed libnumamalloc.a differs"
    [ -x "$dir/bin/numamalloc" ] || bad "bin/numamalloc is not executable"
    grep -qx "prefix=$prefix" "$dir/lib/pkgconfig/numamalloc.pc" || bad "numamalloc.pc does not say prefix=$prefix"
    grep -qx "Version: $version" "$dir/lib/pkgconfig/numamalloc.pc" || bad "numamalloc.pc does not say Version: $version"
    grep -q "set(PACKAGE_VERSION $version)" "$dir/lib/cmake/numamalloc/numamallocConfigVersion.cmake" ||
        bad "numamallocConfigVersion.cmake does not give version $version"
    if grep -l '@[A-Z]*@' "$dir"/lib/pkgconfig/*.pc "$dir"/lib/cmake/numamalloc/*; then
        bad "placeholders left in the files above"
    fi
}

# ---- install into a prefix -------------------------------------------------------------
prefix=$tmp/prefix
make_in_root "$tmp/install.log" install PREFIX="$prefix" DESTDIR= || exit 1
check_tree "$prefix" "$prefix"
out=$("$prefix/bin/numamalloc" --version)
[ "$out" = "numamalloc $version" ] || bad "installed numamalloc --version says '$out'"

# The installed command preloads the installed library.
out=$("$prefix/bin/numamalloc" run -- sh -c 'echo "$LD_PRELOAD"')
[ "$out" = "$prefix/lib/libnumamalloc.so.$major" ] || bad "installed numamalloc run preloads '$out'"

# A program that needs numamalloc to be its malloc: nm_free of a block from
# plain malloc is an invalid free (a one-line report and abort) otherwise.
cat >"$tmp/example.c" <<'EOF'
#include <numamalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(1000);                        /* must be numamalloc's */
    if (!p) return 1;
    memset(p, 1, 1000);
    int usable_ok = nm_usable_size(p) >= 1000;
    nm_free(p);
    void *q = nm_malloc_onnode(4096, nm_current_node());
    if (!q) return 2;
    free(q);
    struct nm_stats st;
    nm_stats_get(&st);
    uint64_t allocs = 0;
    for (int c = 0; c < st.class_count; c++) allocs += st.size_class[c].allocs;
    printf("nodes=%d usable=%s counted=%s\n", nm_node_count(), usable_ok ? "yes" : "no",
           allocs >= 2 ? "yes" : "no");
    return 0;
}
EOF
nodes=$(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)
[ "$nodes" -ge 1 ] || nodes=1
want="nodes=$nodes usable=yes counted=yes"

# pkg-config
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
flags=$(pkg-config --cflags --libs numamalloc) || bad "pkg-config --cflags --libs numamalloc failed"
flags=$(echo $flags)   # pkg-config ends with a space
[ "$flags" = "-I$prefix/include -L$prefix/lib -lnumamalloc" ] || bad "pkg-config gives '$flags'"
[ "$(pkg-config --modversion numamalloc)" = "$version" ] || bad "pkg-config --modversion: $(pkg-config --modversion numamalloc)"
# shellcheck disable=SC2086
if cc -std=gnu11 -Wall -Wextra -Werror "$tmp/example.c" -o "$tmp/example_pc" $flags; then
    out=$(LD_LIBRARY_PATH=$prefix/lib "$tmp/example_pc" 2>&1)
    [ "$out" = "$want" ] || bad "example built with pkg-config: '$out', expected '$want'"
    LD_LIBRARY_PATH=$prefix/lib ldd "$tmp/example_pc" | grep -q "libnumamalloc.so.$major => $prefix/lib/" ||
        bad "example built with pkg-config does not load $prefix/lib/libnumamalloc.so.$major"
else
    bad "cannot build the example with pkg-config flags '$flags'"
fi

# C++: the installed numamalloc.hpp with pkg-config's flags.
if command -v g++ >/dev/null; then
    printf '#include <numamalloc.hpp>\n#include <vector>\nint main() { std::vector<int, numamalloc::allocator<int>> v(1000, 1, numamalloc::on_node{0}); return nm_usable_size(v.data()) >= 4000 ? 0 : 1; }\n' >"$tmp/example.cc"
    # shellcheck disable=SC2086
    if g++ -std=c++17 -Wall -Werror "$tmp/example.cc" -o "$tmp/example_cxx" $flags; then
        LD_LIBRARY_PATH=$prefix/lib "$tmp/example_cxx" || bad "C++ example against the installed numamalloc.hpp failed"
    else
        bad "cannot build a C++ program with the installed numamalloc.hpp"
    fi
fi
# Fortran: the installed module with numamalloc-fortran.pc.
if [ $fortran = 1 ]; then
    fflags=$(pkg-config --cflags --libs numamalloc-fortran) || bad "pkg-config numamalloc-fortran failed"
    fflags=$(echo $fflags)
    [ "$fflags" = "-I$prefix/lib/fortran -I$prefix/include -L$prefix/lib -lnumamalloc_fortran -lnumamalloc" ] ||
        bad "pkg-config numamalloc-fortran gives '$fflags'"
    # shellcheck disable=SC2086
    if gfortran -fopenmp "$root/examples/fortran_onnode.f90" -o "$tmp/fortran_onnode" $fflags; then
        LD_LIBRARY_PATH=$prefix/lib OMP_NUM_THREADS=1 "$tmp/fortran_onnode" >"$tmp/fortran.out" 2>&1 ||
            bad "fortran_onnode against the installed module failed: $(tail -n 2 "$tmp/fortran.out")"
    else
        bad "cannot build examples/fortran_onnode.f90 with numamalloc-fortran.pc's flags '$fflags'"
    fi
else
    echo "note: no Fortran bindings built (gfortran): their installation not checked"
fi

# CMake: the shared and the static target, and a version it must refuse.
mkdir -p "$tmp/cmake"
cat >"$tmp/cmake/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.13)
project(numamalloc_example C)
find_package(numamalloc $major.${version#*.} REQUIRED)
add_executable(example_shared ../example.c)
target_link_libraries(example_shared PRIVATE numamalloc::numamalloc)
add_executable(example_static ../example.c)
target_link_libraries(example_static PRIVATE numamalloc::static)
EOF
if cmake -S "$tmp/cmake" -B "$tmp/cmake/build" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/cmake.log" 2>&1 &&
    cmake --build "$tmp/cmake/build" >>"$tmp/cmake.log" 2>&1; then
    for kind in shared static; do
        out=$(env -u LD_LIBRARY_PATH "$tmp/cmake/build/example_$kind" 2>&1)
        [ "$out" = "$want" ] || bad "CMake example_$kind: '$out', expected '$want'"
    done
    readelf -d "$tmp/cmake/build/example_shared" | grep -q "NEEDED.*libnumamalloc.so.$major" ||
        bad "CMake example_shared does not need libnumamalloc.so.$major"
    if readelf -d "$tmp/cmake/build/example_static" | grep -q "NEEDED.*libnumamalloc"; then
        bad "CMake example_static needs libnumamalloc.so: not linked statically"
    fi
else
    cat "$tmp/cmake.log"; bad "CMake could not build the example with find_package(numamalloc)"
fi
mkdir -p "$tmp/cmake-new"
printf 'cmake_minimum_required(VERSION 3.13)\nproject(p C)\nfind_package(numamalloc %s REQUIRED)\n' \
    "$((major + 1)).0" >"$tmp/cmake-new/CMakeLists.txt"
if cmake -S "$tmp/cmake-new" -B "$tmp/cmake-new/build" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/cmake-new.log" 2>&1; then
    bad "find_package(numamalloc $((major + 1)).0) accepted version $version"
fi

# Man pages: no groff warning; every environment variable, command and
# function named (names are looked for in the page's source, where no line
# breaking or hyphenation splits them).
man1=$prefix/share/man/man1/numamalloc.1 man3=$prefix/share/man/man3/numamalloc.3
for file in "$man1" "$man3"; do
    [ -f "$file" ] || continue   # reported above
    warnings=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$file" 2>&1)
    [ -z "$warnings" ] || bad "$(basename "$file"): groff warns: $warnings"
done
if [ -f "$man1" ]; then
    for var in $(grep -o '^| `NUMAMALLOC_[A-Z_]*`' "$root/README.md" | tr -d '|` '); do
        grep -q "$var" "$man1" || bad "numamalloc(1) does not describe $var (README.md does)"
    done
    for cmd in run topology maps stat prof; do
        grep -q "^\.SS \"$cmd" "$man1" || bad "numamalloc(1) has no section for '$cmd'"
    done
fi
if [ -f "$man3" ]; then
    for fn in $(grep -oE '\bnm_[a-z_]+\(' "$root/include/numamalloc.h" | tr -d '(' | sort -u); do
        grep -q "\b$fn\b" "$man3" || bad "numamalloc(3) does not mention $fn (numamalloc.h declares it)"
    done
fi

make_in_root "$tmp/uninstall.log" uninstall PREFIX="$prefix" DESTDIR=
left=$(tree "$prefix")
[ -z "$left" ] || bad "make uninstall left: $(echo $left)"
[ ! -d "$prefix/lib/cmake/numamalloc" ] || bad "make uninstall left lib/cmake/numamalloc"

# ---- LIBDIR: a lib64 tree, and the rpath pkg-config gives ---------------------------------
prefix64=$tmp/prefix64
make_in_root "$tmp/install64.log" install PREFIX="$prefix64" LIBDIR="$prefix64/lib64" DESTDIR= || exit 1
got=$(tree "$prefix64")
[ "$got" = "$(echo "$expected" | sed 's|^lib/|lib64/|')" ] || bad "LIBDIR=lib64 installed: $(echo $got)"
grep -qx "libdir=$prefix64/lib64" "$prefix64/lib64/pkgconfig/numamalloc.pc" || bad "numamalloc.pc does not say libdir=$prefix64/lib64"
out=$("$prefix64/bin/numamalloc" run -- sh -c 'echo "$LD_PRELOAD"')
[ "$out" = "$prefix64/lib64/libnumamalloc.so.$major" ] || bad "numamalloc run in a lib64 tree preloads '$out'"
# A program linked with the rpath variable starts without LD_LIBRARY_PATH;
# without it, the loader does not find the library (why the variable is there).
export PKG_CONFIG_PATH=$prefix64/lib64/pkgconfig
rpath=$(pkg-config --variable=rpath numamalloc)
[ "$rpath" = "-Wl,-rpath,$prefix64/lib64" ] || bad "pkg-config --variable=rpath gives '$rpath'"
# shellcheck disable=SC2046
if cc -std=gnu11 -Wall -Werror "$tmp/example.c" -o "$tmp/example_rpath" $(pkg-config --cflags --libs numamalloc) "$rpath" &&
    cc -std=gnu11 -Wall -Werror "$tmp/example.c" -o "$tmp/example_norpath" $(pkg-config --cflags --libs numamalloc); then
    out=$(env -u LD_LIBRARY_PATH "$tmp/example_rpath" 2>&1)
    [ "$out" = "$want" ] || bad "example linked with the rpath variable: '$out', expected '$want'"
    env -u LD_LIBRARY_PATH "$tmp/example_norpath" >/dev/null 2>&1 &&
        bad "example linked without the rpath started: the rpath check proves nothing here"
else
    bad "cannot build the example against the lib64 tree"
fi
mkdir -p "$tmp/cmake64"
cp "$tmp/cmake/CMakeLists.txt" "$tmp/cmake64/"
# (CMake searches lib64 only where the platform says so, not on Debian:
# numamalloc_DIR names the directory, as CMake's message says to.)
if cmake -S "$tmp/cmake64" -B "$tmp/cmake64/build" -Dnumamalloc_DIR="$prefix64/lib64/cmake/numamalloc" \
        >"$tmp/cmake64.log" 2>&1 &&
    cmake --build "$tmp/cmake64/build" >>"$tmp/cmake64.log" 2>&1; then
    out=$(env -u LD_LIBRARY_PATH "$tmp/cmake64/build/example_shared" 2>&1)
    [ "$out" = "$want" ] || bad "CMake example_shared against lib64: '$out', expected '$want'"
else
    cat "$tmp/cmake64.log"; bad "CMake could not build the example against the lib64 tree"
fi
unset PKG_CONFIG_PATH
make_in_root "$tmp/uninstall64.log" uninstall PREFIX="$prefix64" LIBDIR="$prefix64/lib64" DESTDIR=
left=$(tree "$prefix64")
[ -z "$left" ] || bad "make uninstall with LIBDIR left: $(echo $left)"

# ---- staged install: DESTDIR ------------------------------------------------------------
stage=$tmp/stage
make_in_root "$tmp/install-destdir.log" install PREFIX=/opt/numamalloc DESTDIR="$stage" || exit 1
if [ "$(cd "$stage" && find . -mindepth 1 -maxdepth 2 -type d | LC_ALL=C sort | tr '\n' ' ')" != "./opt ./opt/numamalloc " ]; then
    bad "DESTDIR install wrote outside DESTDIR/PREFIX: $(cd "$stage" && find . -maxdepth 2 | tr '\n' ' ')"
fi
check_tree "$stage/opt/numamalloc" /opt/numamalloc
if grep -rl "$stage" "$stage/opt/numamalloc/lib/pkgconfig" "$stage/opt/numamalloc/lib/cmake"; then
    bad "the files above name the staging directory"
fi
make_in_root "$tmp/uninstall-destdir.log" uninstall PREFIX=/opt/numamalloc DESTDIR="$stage"
left=$(tree "$stage")
[ -z "$left" ] || bad "make uninstall with DESTDIR left: $(echo $left)"

[ $fail -eq 0 ] || exit 1
echo "make install (prefix and DESTDIR), pkg-config and CMake builds, man pages, make uninstall: all as expected"
