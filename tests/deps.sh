#!/usr/bin/env bash
# Install what `make check` and `make bench` use beyond gcc and make, on
# Debian or Ubuntu.  Safe to run again: only missing packages are installed.
set -euo pipefail
pkgs=(
  g++ clang make                    # compilers (clang: the build is checked with both)
  cmake pkg-config groff-base       # the install test (find_package, pkg-config) and man pages
  python3 git sqlite3 coreutils     # real programs run under LD_PRELOAD in tests/programs
  libnuma-dev numactl               # independent placement checks (tests only, never the library)
  libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 libtbbmalloc2   # peers for make bench
  qemu-system-x86 busybox-static cpio   # the multi-node test machine (tests/vm)
  openmpi-bin libopenmpi-dev        # examples/mpi.c (tests/programs/example_mpi.sh)
)
# CPython's regression tests for Debian's python3 (tests/programs/python_alloc.sh).
if [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import test.libregrtest' 2>/dev/null; then
    pkgs+=("libpython$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')-testsuite")
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
