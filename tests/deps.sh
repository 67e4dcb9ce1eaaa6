#!/usr/bin/env bash
# Install what `make check` and `make bench` use beyond gcc and make, on
# Debian or Ubuntu.  Safe to run again: only missing packages are installed.
#
#   tests/deps.sh          (make deps) install, with sudo when not root
#   tests/deps.sh --auto   (make check) install only when that needs no
#                          password (root, or passwordless sudo), saying so in
#                          one line, apt's output in $NM_BUILD/deps.log; else
#                          one line on what is missing and `make deps`.  Never
#                          fails: the tests that need a missing package skip.
set -euo pipefail
auto=0
[ "${1:-}" = --auto ] && auto=1
log=${NM_BUILD:-build}/deps.log
pkgs=(
  g++ clang make gfortran           # compilers (clang: the build is checked with both; gfortran: the Fortran bindings)
  cmake pkg-config groff-base       # the install test (find_package, pkg-config) and man pages
  python3 git sqlite3 coreutils     # real programs run under LD_PRELOAD in tests/programs
  redis-server redis-tools time     # a server that goes idle (tests/programs/redis_idle.sh)
  libnuma-dev numactl               # independent placement checks (tests only, never the library)
  libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 libtbbmalloc2   # peers for make bench
  qemu-system-x86 busybox-static cpio   # the multi-node test machine (tests/vm)
  openmpi-bin libopenmpi-dev        # examples/mpi.c (tests/programs/example_mpi.sh)
)
# CPython's regression tests for Debian's python3 (tests/programs/python_alloc.sh):
# the package is named after python3's version, so it is known once python3
# is installed (a second round installs it on a fresh machine).
python_tests() {
    if [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import test.libregrtest, test.test_dict' 2>/dev/null; then
        echo "libpython$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')-testsuite"
    fi
}
if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    if [ $auto = 1 ]; then
        echo "make check: not Debian or Ubuntu (no apt-get): tests whose packages are missing skip (tests/deps.sh lists them)"
        exit 0
    fi
    echo "tests/deps.sh: needs apt-get and dpkg-query (Debian or Ubuntu); install these by hand: ${pkgs[*]}" >&2
    exit 1
fi
find_missing() {
    missing=()
    for p in "${pkgs[@]}" $(python_tests); do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
}
find_missing
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if [ $auto = 1 ] && ! sudo -n true 2>/dev/null; then
        echo "make check: ${#missing[@]} test packages missing (${missing[*]}), not installed (needs root or passwordless sudo): run 'make deps' to install them; the tests that need them skip"
        exit 0
    fi
    sudo=(sudo)
    [ $auto = 1 ] && sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
install() {
    "${sudo[@]}" apt-get update -q &&
        "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" || return
    find_missing   # python3's test suite, now that python3 is there
    [ ${#missing[@]} -eq 0 ] || "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}
if [ $auto = 0 ]; then
    echo "installing: ${missing[*]}"
    install
    exit
fi
echo "make check: installing the missing test packages (tests/deps.sh; apt output in $log): ${missing[*]}"
mkdir -p "$(dirname "$log")"
if ! install >"$log" 2>&1; then
    echo "make check: installing failed ($(grep -E '^E:' "$log" | tail -n 1 || true); see $log): the tests that need them skip"
fi
exit 0
