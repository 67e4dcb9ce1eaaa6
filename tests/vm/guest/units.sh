#!/bin/sh
# units.sh — runs inside the multi-node guest (tests/vm/api.sh): unit tests
# of build/tests/unit, copied to /, each with its output and time, then one
# line "units NAME:pass|FAIL ...".  The recorded sysfs trees come in
# /nmroot.tar (tests/sysfs) and NM_ROOT points at them, for the tests that
# re-run themselves on those trees.  region must have found libnuma (api.sh
# put it in): if it says it did not, that is a failure.
#
#   units.sh TEST ...        e.g. units.sh region "tier --this-machine"
# Exit 0 = every test passed, else 1.
mkdir -p /tmp/nmroot && tar -xf /nmroot.tar -C /tmp/nmroot || exit 1
export NM_ROOT=/tmp/nmroot
summary="" failed=0
for t in "$@"; do
    name=${t%% *}
    start=$(date +%s)
    echo "--- unit $t"
    /$t >/tmp/unit.log 2>&1
    rc=$?
    cat /tmp/unit.log
    if [ $rc -eq 0 ] && [ "$name" = region ] && grep -q "libnuma.so.1 not loaded" /tmp/unit.log; then
        echo "region ran without libnuma"
        rc=1
    fi
    echo "--- unit $t: exit $rc ($(( $(date +%s) - start )) s)"
    if [ $rc -eq 0 ]; then summary="$summary $name:pass"; else summary="$summary $name:FAIL"; failed=1; fi
done
echo "units$summary"
exit $failed
