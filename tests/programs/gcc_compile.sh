#!/usr/bin/env bash
# gcc_compile.sh — gcc and g++ compile a generated C program (data/gcc_gen.awk),
# the C++ test tests/preload/cxx_threads.cc and the library's own src/*.c at
# -O2 to assembly, objects and a linked program, plainly and with
# LD_PRELOAD=$NM_LIB (inherited by cc1, cc1plus, as, collect2 and ld).  Every
# output file must be byte-identical and the linked program must run the same.
set -u
. "$(dirname "$0")/data/common.sh"
nm_need gcc g++ awk sha256sum
nm_init gcc_compile

gen="$NM_TMP/gen.c"
awk -v n=80 -f "$NM_DATA/gcc_gen.awk" >"$gen"
# A snapshot of the library's sources, so that both runs compile the same text.
mkdir -p "$NM_TMP/lib"
cp -r "$NM_ROOT/include" "$NM_ROOT/src" "$NM_TMP/lib/"
cp "$NM_ROOT/tests/preload/cxx_threads.cc" "$NM_TMP/lib/"
cp "$NM_ROOT/tests/testutil.h" "$NM_TMP/"   # cxx_threads.cc includes ../testutil.h
shopt -s nullglob
lib_sources=("$NM_TMP/lib"/src/*.c)
echo "compiling $(wc -l <"$gen") generated lines, cxx_threads.cc and ${#lib_sources[@]} library source(s)"

nm_run_pair gcc bash "$NM_DATA/gcc_compile_run.sh" "$gen" "$NM_TMP/lib/cxx_threads.cc" \
    "$NM_TMP/lib" "${lib_sources[@]}"
nm_compare gcc
nm_check_loaded gcc gcc cc1 cc1plus as collect2 ld gen
# (cc1 itself defines free's canonical address, so libc's free binds to cc1's
# stub; cc1's own references must reach $NM_LIB.)
nm_check_binding "cc1" "$(gcc -print-prog-name=cc1)" --version

# Byte-wise, every file the compilers wrote (the checksums above say the same;
# this names the file that differs).
files=0
for f in "$NM_TMP/gcc.base"/*; do
    name=$(basename "$f"); files=$((files + 1))
    cmp -s "$f" "$NM_TMP/gcc.pre/$name" || nm_fail "gcc: $name differs with LD_PRELOAD"
done
[ "$(find "$NM_TMP/gcc.pre" -mindepth 1 | wc -l)" -eq $files ] || nm_fail "gcc: the two runs wrote different files"
grep -q '^checksum ' "$NM_TMP/gcc.base.out" || nm_fail "gcc: the compiled program printed no checksum"
grep -qx 'done' "$NM_TMP/gcc.base.out" || nm_fail "gcc: the compile script did not finish"
echo "gcc: $files output files compared"

nm_finish
