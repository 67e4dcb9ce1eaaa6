# bench/report.awk: turns runs.csv (every run of bench/run.sh) into the
# Markdown tables of results.md, and writes the thread-scaling data the plots
# are drawn from.
#
#   awk -v plot_dir=DIR -f report.awk workloads.txt runs.csv > tables.md
#
# workloads.txt  one line per workload: name|description (from run.sh's table)
# runs.csv       workload,threads,allocator,run,status,metric,value,unit,better,peak_rss_kb,wall_s
#
# For each workload and metric: one row per thread count and allocator with
# the median over the runs, the spread (min - max), the cost relative to glibc
# and to the best peer (the best allocator other than numamalloc), and the
# median peak RSS.  An allocator with any failed run shows FAIL, never a
# number.  Ratios compare costs (time, 1/throughput, memory): below 1.00 is
# better than the reference.
#
# plot_dir/<workload>.scaling.<allocator>: for workloads run at more than
# one thread count, "threads median" lines of the first metric, and one line
# per such workload in plot_dir/scaling.list: workload|metric|unit|better|
# the allocators that have points, space-separated.

function add_unique(list_name, key, value) {
    if (!((list_name, key) in seen)) {
        seen[list_name, key] = 1
        count[list_name]++
        list[list_name, count[list_name]] = value
    }
}

function sort_numeric(arr, n,    i, j, v) {
    for (i = 2; i <= n; i++) {
        v = arr[i]
        for (j = i - 1; j >= 1 && arr[j] + 0 > v + 0; j--)
            arr[j + 1] = arr[j]
        arr[j + 1] = v
    }
}

# Median of the space-separated numbers in s; sets g_min and g_max.
function median(s,    arr, n) {
    n = split(s, arr, " ")
    sort_numeric(arr, n)
    g_min = arr[1]
    g_max = arr[n]
    if (n % 2)
        return arr[(n + 1) / 2]
    return (arr[n / 2] + arr[n / 2 + 1]) / 2
}

function fmt(v) {
    if (v < 0) v = -v
    if (v >= 100) return sprintf("%.0f", v)
    if (v >= 10) return sprintf("%.1f", v)
    return sprintf("%.2f", v)
}

function fmt_kb(kb) {
    if (kb == "") return "-"
    if (kb >= 1048576) return sprintf("%.2f GiB", kb / 1048576)
    return sprintf("%.1f MiB", kb / 1024)
}

# Cost of value v relative to reference r (below 1 = v is better).
function cost_ratio(v, r, better) {
    if (v == 0 || r == 0) return "-"
    if (better == "higher") return sprintf("%.2f", r / v)
    return sprintf("%.2f", v / r)
}

function is_better(v, r, better) {
    return better == "higher" ? v > r : v < r
}

FNR == NR {
    split($0, f, "|")
    description[f[1]] = f[2]
    next
}

FNR == 1 && $1 == "workload" { next }

{
    w = $1; t = $2; a = $3; run = $4; status = $5; m = $6; v = $7
    add_unique("workloads", w, w)
    add_unique("metrics_" w, m, m)
    add_unique("threads_" w, t, t)
    add_unique("allocators", a, a)
    unit[w, m] = $8
    better[w, m] = $9
    if (!((w, t, a, run) in run_seen)) {
        run_seen[w, t, a, run] = 1
        runs[w, t, a]++
        if (status == "ok" && $10 != "")
            peak[w, t, a] = peak[w, t, a] " " $10
    }
    if (status != "ok") {
        if (!((w, t, a, run) in failed_run)) {
            failed_run[w, t, a, run] = 1
            failures[w, t, a]++
            if (!((w, t, a) in fail_reason))
                fail_reason[w, t, a] = status
        }
    } else {
        values[w, m, t, a] = values[w, m, t, a] " " v
    }
}

END {
    for (wi = 1; wi <= count["workloads"]; wi++) {
        w = list["workloads", wi]
        nt = count["threads_" w]
        for (i = 1; i <= nt; i++) tlist[i] = list["threads_" w, i]
        sort_numeric(tlist, nt)

        printf "### %s\n\n", w
        if (w in description && description[w] != "")
            printf "%s\n\n", description[w]

        for (mi = 1; mi <= count["metrics_" w]; mi++) {
            m = list["metrics_" w, mi]
            b = better[w, m]
            printf "**%s** (%s, %s is better)\n\n", m, unit[w, m], b
            printf "| threads | allocator | median | min - max | vs glibc | vs best peer | peak RSS |\n"
            printf "|--:|:--|--:|--:|--:|--:|--:|\n"
            best_note = ""
            for (ti = 1; ti <= nt; ti++) {
                t = tlist[ti]
                # medians of the allocators that passed every run
                best = ""; best_value = ""
                for (ai = 1; ai <= count["allocators"]; ai++) {
                    a = list["allocators", ai]
                    ok[a] = ((w, t, a) in runs) && !((w, t, a) in failures) && ((w, m, t, a) in values)
                    if (!ok[a]) continue
                    med[a] = median(values[w, m, t, a]); lo[a] = g_min; hi[a] = g_max
                    if (a != "numamalloc" && (best == "" || is_better(med[a], best_value, b))) {
                        best = a; best_value = med[a]
                    }
                }
                if (best != "")
                    best_note = best_note (best_note == "" ? "" : ", ") t " thr: " best
                for (ai = 1; ai <= count["allocators"]; ai++) {
                    a = list["allocators", ai]
                    if (!((w, t, a) in runs)) continue
                    if (!ok[a]) {
                        reason = ((w, t, a) in fail_reason) ? fail_reason[w, t, a] : "FAIL: no value"
                        sub(/^FAIL: */, "", reason)
                        printf "| %s | %s | **FAIL** (%s; %d of %d runs failed) | | | | |\n", t, a,
                               reason, failures[w, t, a], runs[w, t, a]
                        continue
                    }
                    vs_glibc = ok["glibc"] ? cost_ratio(med[a], med["glibc"], b) : "-"
                    vs_best = best != "" ? cost_ratio(med[a], best_value, b) : "-"
                    rss = (w, t, a) in peak ? median(peak[w, t, a]) : ""
                    printf "| %s | %s | %s | %s - %s | %s | %s | %s |\n", t, a, fmt(med[a]),
                           fmt(lo[a]), fmt(hi[a]), vs_glibc, vs_best, fmt_kb(rss)
                }
            }
            printf "\nBest peer (fastest or smallest allocator other than numamalloc): %s.\n\n",
                   best_note == "" ? "none" : best_note
        }

        # thread-scaling data for the plots (first metric)
        if (plot_dir != "" && nt > 1) {
            m = list["metrics_" w, 1]
            plotted = ""
            for (ai = 1; ai <= count["allocators"]; ai++) {
                a = list["allocators", ai]
                file = plot_dir "/" w ".scaling." a
                points = 0
                for (ti = 1; ti <= nt; ti++) {
                    t = tlist[ti]
                    if (((w, t, a) in runs) && !((w, t, a) in failures) && ((w, m, t, a) in values)) {
                        printf "%s %s\n", t, median(values[w, m, t, a]) > file
                        points++
                    }
                }
                if (points) {
                    close(file)
                    plotted = plotted (plotted == "" ? "" : " ") a
                }
            }
            if (plotted != "")
                printf "%s|%s|%s|%s|%s\n", w, m, unit[w, m], better[w, m], plotted > (plot_dir "/scaling.list")
        }
    }
}
