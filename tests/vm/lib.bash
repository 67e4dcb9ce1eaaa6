# tests/vm/lib.bash — shell code shared by the tests/vm scripts (sourced, not
# run; the Makefile's tests/vm/*.sh glob does not match it): where things
# are, building a guest program, booting a guest of some shape to run a
# command with its output shown and kept, and the closing list of results.
#
#   . "$(dirname "$0")/lib.bash"
#   vm_need_lib                          # build/libnumamalloc.so must exist
#   vm_build placement                   # tests/vm/guest/placement.c -> $out/placement
#   vm_run 2node 140 "$out/placement $lib" "LD_PRELOAD=/libnumamalloc.so /placement"
#   vm_record 2node "$(grep '^summary' "$vm_log")"
#   vm_finish                            # prints the results, exits 0 or 1
#
# A guest that cannot be had (vm.sh exits 77: no QEMU, no kernel) makes the
# whole script a skip when no shape ran before, and a failure after one did.

root=${NM_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
lib=${NM_LIB:-$build/libnumamalloc.so}
vm=$root/tests/vm/vm.sh
out=$build/vm/guest          # guest programs built here
preload=/$(basename "$lib")  # the library's path in the guest

results=() failed=0 ran=0
vm_rc=0 vm_boot=""
vm_log=$(mktemp "${TMPDIR:-/tmp}/nm-vm-log.XXXXXX")
trap 'rm -f "$vm_log"' EXIT

vm_need_lib() {
    [ -f "$lib" ] || { echo "no $lib: run make lib first"; exit 1; }
    mkdir -p "$out"
}

# vm_build NAME [ARGS...]: tests/vm/guest/NAME.c -> $out/NAME, with the
# project's warnings; ARGS go last (libraries to link).
vm_build() {
    local name=$1
    shift
    ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -O2 -pthread -I"$root/include" \
        "$root/tests/vm/guest/$name.c" -o "$out/$name" "$@" ||
        { echo "cannot build tests/vm/guest/$name.c"; exit 1; }
}

# vm_run SHAPE TIMEOUT "FILES" COMMAND: boot a guest of SHAPE with FILES
# (each at /BASENAME), run COMMAND with sh -c, show its output.  Sets vm_rc
# (vm.sh's status), vm_boot (boot to power-off time) and keeps the output in
# $vm_log until the next vm_run.
vm_run() {
    local shape=$1 timeout_s=$2 files=$3 command=$4
    echo "=== shape $shape"
    "$vm" --shape "$shape" --timeout "$timeout_s" --files "$files" -- sh -c "$command" 2>&1 | tee "$vm_log"
    vm_rc=${PIPESTATUS[0]}
    vm_boot=$(sed -n 's/.*(boot to power-off \(.*\))$/\1/p' "$vm_log" | tail -n 1)
    [ "$vm_rc" -eq 77 ] || ran=$((ran + 1))
}

# The last line of the last guest's output (vm.sh's reason for a 77).
vm_last_line() { grep -v '^$' "$vm_log" | tail -n 1; }

# vm_record SHAPE DETAIL: one result line for the last vm_run.
vm_record() {
    local shape=$1 detail=$2
    if [ "$vm_rc" -eq 77 ]; then
        [ $ran -eq 0 ] && { vm_last_line; exit 77; }
        results+=("FAIL $shape: $(vm_last_line)")
        failed=1
    elif [ "$vm_rc" -eq 0 ]; then
        results+=("PASS $shape${vm_boot:+ ($vm_boot)}${detail:+: $detail}")
    else
        results+=("FAIL $shape (exit $vm_rc${vm_boot:+, $vm_boot})${detail:+: $detail}")
        failed=1
    fi
}

vm_finish() {
    echo "=== results"
    printf '%s\n' "${results[@]}"
    exit $failed
}
