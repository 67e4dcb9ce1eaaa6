#!/usr/bin/env bash
# git_ops.sh — a git session (data/git_ops_run.sh: init, 150 commits, branches,
# a clean and a conflicting merge, log, blame, gc --aggressive, fsck, clone,
# archive) run plainly and with LD_PRELOAD=$NM_LIB.  Fixed names and dates
# make the hashes deterministic; all output must be identical.
set -u
. "$(dirname "$0")/data/common.sh"
nm_need git tar sha256sum awk
nm_init git_ops

nm_run_pair git bash "$NM_DATA/git_ops_run.sh"
nm_compare git
# git's helpers (pack-objects, index-pack, upload-pack, ...) start as "git".
nm_check_loaded git bash git
nm_check_binding "git libc.so.6" git --version

out="$NM_TMP/git.base.out"
grep -qx '== done' "$out" || nm_fail "git: the session did not run to its end"
grep -qx 'verify-pack ok' "$out" || nm_fail "git: verify-pack failed"
echo "git: $(wc -l <"$out") lines of output, $(nm_loaded_programs git | wc -l) process images"

nm_finish
