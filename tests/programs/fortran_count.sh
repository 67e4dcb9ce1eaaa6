#!/usr/bin/env bash
# fortran_count.sh — the element count of the Fortran array allocations
# (nm_alloc_on_node, nm_alloc_local, nm_alloc_heap) is an integer of any
# kind; anything else (n = 1.5 compiles: n is class(*)) is refused:
#   - without stat, the program stops with "NAME: n must be an integer"
#     (one line on stderr, exit status not 0), for each of the three;
#   - with stat, stat is EINVAL (22) and the array is disassociated;
#   - a negative integer count still says "cannot allocate -3 elements:
#     errno 22", and integers of kinds 1, 2, 4 and 8 allocate.
# Skipped (77) where gfortran is missing.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
# shellcheck source=tests/programs/data/common.sh
. "$root/tests/programs/data/common.sh"   # nm_fortran_ready
nm_fortran_ready "$build"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nm-fortran-count.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# build NAME BODY: a program that uses numamalloc and runs BODY.
build() {
    printf 'program %s\n    use numamalloc\n    implicit none\n    real(8), pointer :: a(:)\n    integer :: st\n    type(c_ptr) :: h\n    st = 0; h = c_null_ptr\n%s\nend program\n' \
        "$1" "$2" >"$tmp/$1.f90"
    gfortran "${nm_fflags[@]}" -Wno-unused-variable "$tmp/$1.f90" -o "$tmp/$1" "${nm_flink[@]}" 2>"$tmp/$1.build" ||
        { bad "cannot build $1: $(head -n 5 "$tmp/$1.build")"; return 1; }
}

# A real count, without stat: a stop with the reason, for each procedure.
for call in "nm_alloc_on_node(a, 1.5, 0)" "nm_alloc_local(a, 1.5)" "nm_alloc_heap(a, 2.0d0, h)"; do
    name=${call%%(*}
    build "real_$name" "    call $call
    print '(a)', 'not stopped'" || continue
    "$tmp/real_$name" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ $rc -ne 0 ] || bad "$name with a real count exited 0"
    grep -q 'not stopped' "$tmp/out" && bad "$name with a real count did not stop"
    if grep -qx "$name: n must be an integer" "$tmp/err"; then
        echo "$name(a, real): stops with '$name: n must be an integer' (exit $rc)"
    else
        bad "$name with a real count: stderr lacks '$name: n must be an integer': $(grep -v '^#\|^$\|Backtrace\|ERROR STOP\|Error termination\|^	at' "$tmp/err" | head -n 3)"
    fi
done

# With stat: EINVAL, disassociated; a negative integer keeps its message;
# integers of every kind allocate.
build stat_and_kinds "    call nm_alloc_local(a, 1.5, stat=st)
    if (st /= 22 .or. associated(a)) then
        print '(a, i0)', 'real count with stat: stat ', st
        error stop 2
    end if
    call nm_alloc_local(a, 3_1); if (size(a) /= 3) error stop 3; call nm_free(a)
    call nm_alloc_local(a, 3_2); if (size(a) /= 3) error stop 3; call nm_free(a)
    call nm_alloc_local(a, 3_4); if (size(a) /= 3) error stop 3; call nm_free(a)
    call nm_alloc_local(a, 3_8); if (size(a) /= 3) error stop 3; call nm_free(a)
    print '(a)', 'stat and kinds ok'
    call nm_alloc_local(a, -3)" && {
    "$tmp/stat_and_kinds" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if grep -qx 'stat and kinds ok' "$tmp/out"; then
        echo "real count with stat: stat 22, a disassociated; integer(1/2/4/8) counts allocate"
    else
        bad "stat or integer kinds wrong: $(head -n 2 "$tmp/out")"
    fi
    if [ $rc -ne 0 ] && grep -qx 'nm_alloc_local: cannot allocate -3 elements: errno 22' "$tmp/err"; then
        echo "negative count: 'nm_alloc_local: cannot allocate -3 elements: errno 22'"
    else
        bad "negative count: exit $rc, stderr: $(grep 'nm_alloc' "$tmp/err")"
    fi
}

[ $fail = 0 ] && echo "fortran count: a non-integer count refused with its reason, integer counts as before"
exit $fail
