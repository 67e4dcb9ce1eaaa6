# shellcheck shell=bash
# gcc_compile_run.sh — the compiles of tests/programs/gcc_compile.sh, run with
# bash in an empty directory: arguments are the generated C file, the C++ file
# and then any C files of the library (compiled with its include path).  The
# gcc driver starts cc1, cc1plus, as, collect2 and ld, which inherit LD_PRELOAD.
# Every output stays in this directory for a byte-wise comparison.
set -eu
gen=$1 cxx=$2 root=$3
shift 3
gcc -O2 -Wall -Wextra -S "$gen" -o gen.s
gcc -O2 -g -Wall -Wextra -c "$gen" -o gen.o
gcc -O2 -o gen gen.o
./gen
g++ -std=gnu++17 -O2 -Wall -Wextra -S "$cxx" -o cxx.s
# The library's sources are work in progress: a compile error is output to
# compare like any other, not a reason to stop.
if [ $# -gt 0 ]; then
    status=0
    gcc -std=gnu11 -O2 -g -fPIC -fvisibility=hidden -I"$root/include" -I"$root/src" -pthread \
        -ffile-prefix-map="$root"=. -c "$@" 2>&1 || status=$?
    echo "library sources: gcc status $status"
fi
for f in *.s *.o gen; do
    printf '%s %s\n' "$(sha256sum <"$f" | cut -c1-64)" "$f"
done
echo "done"
