#!/usr/bin/env bash
# tests/vm/report/locality.sh — a benchmark report, not a test (make check
# does not run it: the tests/vm/*.sh glob does not reach this directory).
# In the 4-node guest, the pinned multi-threaded workload of
# tests/vm/guest/placement.c runs on numamalloc, glibc and each peer
# installed (jemalloc, mimalloc, tcmalloc; copied into the guest), with
# --report (measured, nothing judged), and the share of each thread's pages
# on its own node is printed as Markdown tables:
#   - per scenario: pinned threads (check a), remote frees (b), new threads
#     after others exited (c1), workers after the main thread's working set
#     (c2), a thread moved to another node (d1, d2);
#   - per thread and size range for the pinned threads;
# and tests/vm/guest/first_touch.c (--report --sizes 64,256) runs under
# each allocator too: the master thread allocates 64 and 256 MiB arrays, an
# OpenMP team pinned one thread per node writes them with a static schedule
# (malloc, again after free, grown with realloc, calloc), and the share of
# each chunk's pages on its writer's node is reported: the worst chunk of a
# fresh malloc and of every case in the scenario table, and the worst chunk
# of each case in a table of its own.
# The guest has no real latency difference between nodes, so only where
# pages land is reported, not speed.
#
#   tests/vm/report/locality.sh [--out FILE]     e.g. --out bench/results/locality.md
# Exit 0 = the report was made; 77 = no guest here; 1 = a run failed.
set -u
. "$(dirname "$0")/../lib.bash"
target=""
[ "${1:-}" = "--out" ] && target=${2:?--out needs a file}
vm_need_lib
vm_build placement
vm_build first_touch -fopenmp

# name | library to preload (- for none) | Debian package (for the version)
allocator_table=(
    "numamalloc | $lib                                         | -"
    "glibc      | -                                            | libc6"
    "jemalloc   | /usr/lib/x86_64-linux-gnu/libjemalloc.so.2       | libjemalloc2"
    "mimalloc   | /usr/lib/x86_64-linux-gnu/libmimalloc.so.2       | libmimalloc2.0"
    "tcmalloc   | /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 | libtcmalloc-minimal4"
)
names=() files="$out/placement $out/first_touch" guest="" versions=()
for line in "${allocator_table[@]}"; do
    IFS='|' read -r name so package <<<"$line"
    name=$(echo $name) so=$(echo $so) package=$(echo $package)
    if [ "$so" != - ] && [ ! -f "$so" ]; then
        echo "note: $name not installed ($so): left out" >&2
        continue
    fi
    names+=("$name")
    preload_env=""
    if [ "$so" != - ]; then
        files+=" $so"
        preload_env="LD_PRELOAD=/$(basename "$so") "
    fi
    version=""
    [ "$package" != - ] && version=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null)
    versions+=("$name${version:+ $version}")
    guest+="echo '=== allocator $name'; $preload_env/placement --report a b c1 c2 d1 d2 || echo 'run failed'; "
    guest+="echo '=== first_touch'; $preload_env/first_touch --report --sizes 64,256 || echo 'run failed'; "
done

# The guest's output goes to stderr, the report to stdout.
vm_run 4node 600 "$files" "$guest" >&2
[ "$vm_rc" -eq 77 ] && { vm_last_line; exit 77; }
if [ "$vm_rc" -ne 0 ] || grep -q '^run failed' "$vm_log"; then
    echo "locality: a run failed in the guest (exit $vm_rc)" >&2
    exit 1
fi
kernel=$(basename "$(readlink -f "$build/vm/vmlinuz")" | sed 's/^vmlinuz-//')

# From the guest's output: per allocator and scenario, local / measured
# pages, and the numbers of d2 and b.  Lines look like
#   "c1   thread on node 1, small   73.02% of   3214 pages on node 1; ..."
# first_touch.c's lines (after "=== first_touch") look like
#   "   64 MiB malloc            node 0 100.0%  node 1  99.2%  ...  (0.4 s)"
#   "summary: worst chunk 63.1% on its writer's node, 3 case(s) below 99%"
report=$(awk -v names="${names[*]}" '
    /^=== allocator / { a = $3; in_ft = 0; next }
    /^=== first_touch/ { in_ft = 1; next }
    in_ft && /^summary: worst chunk / { ft_worst[a] = $4; next }
    in_ft && /^ *[0-9]+ MiB / {
        what = $0; sub(/^ *[0-9]+ MiB +/, "", what); sub(/ +node .*/, "", what)
        what = $1 " MiB " what
        min = ""
        rest = $0
        while (match(rest, /node [0-9]+ +[0-9.]+%/)) {
            split(substr(rest, RSTART, RLENGTH), f, / +/)
            pct = f[3]; sub(/%/, "", pct)
            if (min == "" || pct + 0 < min + 0) min = pct
            rest = substr(rest, RSTART + RLENGTH)
        }
        if (!((what) in ft_seen)) { ft_seen[what] = 1; ft_rows[++ft_n] = what }
        ft_cell[a, what] = min
        if (what ~ / MiB malloc$/ && (!(a in ft_malloc) || min + 0 < ft_malloc[a] + 0)) ft_malloc[a] = min
        next
    }
    in_ft { next }
    /^b +[0-9]+ B: of/ { match($0, /new blocks overlap [0-9]+/); stolen[a] += substr($0, RSTART + 19, RLENGTH - 19) + 0
                         match($0, /of [0-9]+ blocks/); handed[a] += substr($0, RSTART + 3, RLENGTH - 10) + 0
                         next }
    /^(a|b|c1|d1) / || /^c2   thread/ {
        if (!match($0, /[0-9.]+% of +[0-9]+ pages on node [0-9]+/)) next
        split(substr($0, RSTART, RLENGTH), f, /[% ]+/)
        pct = f[1]; pages = f[3]; node = f[7]
        what = substr($0, 6, RSTART - 6); sub(/ +$/, "", what)
        local = pct * pages / 100
        key = $1
        if ($1 == "b" && what !~ /after remote frees/) next         # node 1 only
        if ($1 == "c1" && what !~ ("node " node1)) next              # the new threads only
        loc[a, key] += local; tot[a, key] += pages
        if ($1 == "a") { row[what] = 1; cell[a, what] = pct; rows[++nrows] = what }
        next
    }
    /^guest nodes with CPUs:/ { match($0, /node 1 = [0-9]+/); node1 = substr($0, RSTART + 9, RLENGTH - 9) }
    /^d2   without nm_thread_rebind/ { match($0, /after [0-9]+ allocations/); worst[a] = substr($0, RSTART + 6, RLENGTH - 18)
                                      match($0, /mix after [0-9]+/); mix[a] = substr($0, RSTART + 10, RLENGTH - 10) }
    END {
        n = split(names, al, " ")
        head = "| scenario |"; rule = "|:--|"
        for (i = 1; i <= n; i++) { head = head " " al[i] " |"; rule = rule "--:|" }
        split("a b c1 c2 d1", keys, " ")
        label["a"] = "pinned threads, one per node: small, medium, large blocks (a)"
        label["b"] = "node 1 allocating after freeing node 0'"'"'s blocks (b)"
        label["c1"] = "new threads on node 1 after node-0 threads exited with half their blocks live (c1)"
        label["c2"] = "workers on node 1 after the main thread freed a 90 MiB working set on node 0 (c2)"
        label["d1"] = "a thread moved from node 0 to node 1: its next blocks (d1; numamalloc calls nm_thread_rebind)"
        print "Share of the pages of each thread'"'"'s blocks on the node it runs on (all threads of the scenario together):"
        print ""
        print head; print rule
        for (k = 1; k <= 5; k++) {
            line = "| " label[keys[k]] " |"
            for (i = 1; i <= n; i++) {
                t = tot[al[i], keys[k]]
                line = line " " (t ? sprintf("%.1f%%", 100 * loc[al[i], keys[k]] / t) : "-") " |"
            }
            print line
        }
        line = "| master allocates with malloc, OpenMP team (one thread per node) writes its static chunk: worst chunk, 64 and 256 MiB arrays (first_touch.c) |"
        for (i = 1; i <= n; i++) line = line " " (al[i] in ft_malloc ? ft_malloc[al[i]] "%" : "-") " |"
        print line
        line = "| the same, worst chunk of every case: malloc, again after free, realloc'"'"'s old and new halves, calloc, calloc again (first_touch.c) |"
        for (i = 1; i <= n; i++) line = line " " (al[i] in ft_worst ? ft_worst[al[i]] : "-") " |"
        print line
        line = "| node 0'"'"'s freed blocks that node 1 got back (b; of " handed[al[1]] ") |"
        for (i = 1; i <= n; i++) line = line " " stolen[al[i]] + 0 " |"
        print line
        line = "| allocations until a moved thread'"'"'s blocks are local, worst size class / mix (d2, no rebind call) |"
        for (i = 1; i <= n; i++) line = line " " worst[al[i]] " / " mix[al[i]] " |"
        print line
        print ""
        print "Pinned threads (check a), per thread and size range: share of pages on the thread'"'"'s node:"
        print ""
        sub(/scenario/, "thread, blocks", head)
        print head; print rule
        for (r = 1; r <= nrows; r++) {
            w = rows[r]
            if (w in done) continue
            done[w] = 1
            line = "| " w " |"
            for (i = 1; i <= n; i++) line = line " " ((al[i], w) in cell ? cell[al[i], w] "%" : "-") " |"
            print line
        }
        print ""
        print "Master allocates, OpenMP team writes (first_touch.c): per array size and case, the share of pages on the writer'"'"'s node of the worst of the four chunks:"
        print ""
        sub(/thread, blocks/, "array, case", head)
        print head; print rule
        for (r = 1; r <= ft_n; r++) {
            w = ft_rows[r]
            line = "| " w " |"
            for (i = 1; i <= n; i++) line = line " " ((al[i], w) in ft_cell ? ft_cell[al[i], w] "%" : "-") " |"
            print line
        }
    }' "$vm_log")

{
    echo "# Page locality in a 4-node guest"
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Guest: QEMU (TCG) \`4node\` shape of tests/vm (nodes 0-3, one CPU and 384 MiB each; distances 12 within {0,1} and {2,3}, 21 across), Linux $kernel, THP always, numa_balancing off"
    echo "- Command: \`tests/vm/report/locality.sh\` (runs \`tests/vm/guest/placement.c --report a b c1 c2 d1 d2\` and \`tests/vm/guest/first_touch.c --report --sizes 64,256\` under each allocator; pages located with move_pages(2))"
    echo "- Allocators: $(IFS=,; echo "${versions[*]}" | sed 's/,/, /g')"
    echo
    echo "A report, not a benchmark of speed: the guest has no real latency difference"
    echo "between nodes.  tests/vm/README.md describes each scenario; numamalloc's"
    echo "numbers are also judged by make check (tests/vm/placement.sh and, for the"
    echo "master-allocates case, tests/vm/first_touch.sh)."
    echo
    echo "$report"
} >"$vm_log.md"
if [ -n "$target" ]; then cp "$vm_log.md" "$target" && echo "wrote $target" >&2; fi
cat "$vm_log.md"
rm -f "$vm_log.md"
