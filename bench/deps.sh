#!/usr/bin/env bash
# bench/deps.sh (`make bench-deps`): installs what `make bench` compares and
# draws with, on Debian or Ubuntu: the peer allocators (each preloaded by
# bench/run.sh), the real programs it times (bench/programs.sh: redis,
# sqlite3, python3, clang; GNU time for their peak RSS), gnuplot for the
# plots, and valgrind for bench/profile.sh
# (where perf has no hardware counters, as in most virtual machines).  Only
# missing packages are installed; safe to run again.
set -euo pipefail
pkgs=(
  libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 libtbbmalloc2   # peers
  redis-server redis-tools sqlite3 python3 clang time             # real programs
  gnuplot-nox                                                      # PNG plots
  valgrind                                                         # bench/profile.sh
)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "bench-deps: all installed: ${pkgs[*]}"
    exit 0
fi
echo "bench-deps: installing: ${missing[*]}"
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
