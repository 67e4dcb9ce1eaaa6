#!/usr/bin/env bash
# tests/vm/boot_retry.sh — make check: vm.sh boots a guest once more only
# when its kernel failed before the command started, never when the command
# ran.  A kernel QEMU cannot load (/bin/true) fails before init: vm.sh must
# say it boots again, once, then exit 70.  A command that crashes the
# guest's kernel after it started (sysrq 'c') must exit 70 at once, its
# output shown, without a second boot.
# Exit 0 = both held; 77 = no guest can be had here.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
vm=$root/tests/vm/vm.sh
log=$(mktemp "${TMPDIR:-/tmp}/nm-boot-retry.XXXXXX")
trap 'rm -f "$log"' EXIT
failed=0

"$vm" --shape 2node -- true >"$log" 2>&1
rc=$?
if [ $rc -eq 77 ]; then tail -n 1 "$log"; exit 77; fi
[ $rc -eq 0 ] || { echo "FAIL: a plain guest exited $rc"; cat "$log"; exit 1; }

NM_VM_KERNEL=/bin/true "$vm" --shape 2node -- true >"$log" 2>&1
rc=$?
retries=$(grep -c 'booting it once more' "$log")
if [ $rc -eq 70 ] && [ "$retries" -eq 1 ]; then
    echo "ok: a kernel that cannot boot: booted once more, then exit 70"
else
    echo "FAIL: a kernel that cannot boot: exit $rc, $retries retries (want 70, 1)"
    cat "$log"
    failed=1
fi

"$vm" --shape 2node -- sh -c 'echo started; echo c > /proc/sysrq-trigger' >"$log" 2>&1
rc=$?
retries=$(grep -c 'booting it once more' "$log")
started=$(grep -c '^started$' "$log")
if [ $rc -eq 70 ] && [ "$retries" -eq 0 ] && [ "$started" -eq 1 ]; then
    echo "ok: a command that crashed the guest: exit 70, not booted again"
else
    echo "FAIL: a command that crashed the guest: exit $rc, $retries retries, output seen $started times (want 70, 0, 1)"
    cat "$log"
    failed=1
fi
exit $failed
