# bench/report.awk: turns runs.csv (every run of bench/run.sh) into the
# Markdown tables of results.md, and writes the thread-scaling data the plots
# are drawn from.
#
#   awk -v plot_dir=DIR -v variants="name=settings;..." -f report.awk workloads.txt runs.csv > tables.md
#
# workloads.txt  one line per workload: name|description (from run.sh's table)
# runs.csv       workload,threads,allocator,run,status,metric,value,unit,better,peak_rss_kb,wall_s
# variants       numamalloc's variants in the run (numamalloc_*: the same library
#                with other settings), with their settings
#
# For each workload and metric: one row per thread count and allocator with
# the median over the runs, the spread (min - max), the cost relative to glibc
# and to the best peer (the best allocator other than numamalloc and its
# variants), and the median peak RSS; under the table, numamalloc's cost
# relative to each variant.  An allocator with any failed run shows FAIL,
# never a number.  Ratios compare costs (time, 1/throughput, memory): below
# 1.00 is better than the reference.  A value that is a word ("unsupported",
# "one_node": an optional metric the machine cannot measure) is shown as
# such; a metric with no number at all is one sentence instead of a table.
#
# Plot data:
#   plot_dir/<workload>.<metric>.scaling.<allocator>: for workloads run at
#     more than one thread count, "threads median min max" lines of each
#     metric, and
#     one line per workload and metric in plot_dir/scaling.list:
#     workload|metric|unit|better|the allocators that have points
#   plot_dir/<workload>.<metric>.bars: for workloads run at one thread count
#     by more than one allocator, "allocator median min max" lines of the first
#     metric, and one line per such workload in plot_dir/bars.list:
#     workload|metric|unit|better|file
#   plot_dir/summary.dat: "allocator time_ratio rss_ratio" lines of the
#     summary (below), when glibc and another allocator have ratios
#
# The summary, last: for each allocator (glibc, numamalloc, the peers, and
# numamalloc's variants that ran in as many workloads as numamalloc), the geometric
# mean over the workloads of its cost relative to glibc in the workload's
# first metric that is not memory (MiB), and of its peak RSS relative to
# glibc's.  A workload run at several thread counts counts once: the
# geometric mean of its ratios at each count first.  Only configurations in
# which both the allocator and glibc passed every run count.

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

# numamalloc itself or one of its variants: never a peer.
function is_ours(a) {
    return a == "numamalloc" || a ~ /^numamalloc_/
}

# The median of metric m of workload w at t threads for allocator a, or ""
# if a failed a run there or has no number.
function ok_median(w, m, t, a) {
    if (!((w, t, a) in runs) || ((w, t, a) in failures) || !((w, m, t, a) in values))
        return ""
    return median(values[w, m, t, a])
}

function ok_peak(w, t, a) {
    if (!((w, t, a) in runs) || ((w, t, a) in failures) || !((w, t, a) in peak))
        return ""
    return median(peak[w, t, a])
}

function is_number(v) {
    return v ~ /^[0-9]+(\.[0-9]+)?$/
}

# What a word in place of a number means.
function word_text(what) {
    if (what == "unsupported")
        return "not supported on this machine: the CPU (or its hypervisor) exposes no such hardware counter, so there is no number"
    if (what == "one_node")
        return "not measured: this machine has one NUMA node, so there is no other node's memory to measure this on"
    return "not measured (" what ")"
}

BEGIN {
    n_variants = split(variants, variant_list, ";")
    for (i = 1; i <= n_variants; i++) {
        eq = index(variant_list[i], "=")
        variant_name[i] = substr(variant_list[i], 1, eq - 1)
        variant_settings[i] = substr(variant_list[i], eq + 1)
    }
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
    } else if (is_number(v)) {
        values[w, m, t, a] = values[w, m, t, a] " " v
    } else {
        word[w, m, t, a] = v
        words[w, m] = v
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
            numbers = 0
            for (ti = 1; ti <= nt; ti++)
                for (ai = 1; ai <= count["allocators"]; ai++)
                    if ((w, m, tlist[ti], list["allocators", ai]) in values)
                        numbers = 1
            if (!numbers && (w, m) in words) {
                printf "**%s**: %s.\n\n", m, word_text(words[w, m])
                continue
            }
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
                    if (!is_ours(a) && (best == "" || is_better(med[a], best_value, b))) {
                        best = a; best_value = med[a]
                    }
                }
                if (best != "")
                    best_note = best_note (best_note == "" ? "" : ", ") t " thr: " best
                for (ai = 1; ai <= count["allocators"]; ai++) {
                    a = list["allocators", ai]
                    if (!((w, t, a) in runs)) continue
                    if (!ok[a] && !((w, t, a) in failures) && (w, m, t, a) in word) {
                        printf "| %s | %s | n/a: %s | | | | |\n", t, a, word[w, m, t, a]
                        continue
                    }
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
                # numamalloc against each of its variants at this thread count
                for (vi = 1; vi <= n_variants; vi++) {
                    v = variant_name[vi]
                    if (ok["numamalloc"] && ok[v])
                        variant_note[vi] = variant_note[vi] (variant_note[vi] == "" ? "" : ", ") \
                            cost_ratio(med["numamalloc"], med[v], b) (nt > 1 ? " at " t " thr" : "")
                }
            }
            printf "\nBest peer (fastest or smallest allocator other than numamalloc): %s.\n\n",
                   best_note == "" ? "none" : best_note
            for (vi = 1; vi <= n_variants; vi++) {
                if (variant_note[vi] ~ /[0-9]/)
                    printf "numamalloc (default settings) vs %s (`%s`): %s (its cost over the variant's; below 1.00: the default is better).\n\n",
                           variant_name[vi], variant_settings[vi], variant_note[vi]
                variant_note[vi] = ""
            }

            # plot data: one bar per allocator (the first metric of workloads
            # at one thread count that more than one allocator ran)
            if (plot_dir != "" && nt == 1 && mi == 1) {
                file = plot_dir "/" w "." m ".bars"
                bars = 0
                for (ai = 1; ai <= count["allocators"]; ai++) {
                    a = list["allocators", ai]
                    if (((w, tlist[1], a) in runs) && ok[a]) {
                        mid = median(values[w, m, tlist[1], a])
                        printf "%s %s %s %s\n", a, mid, g_min, g_max > file
                        bars++
                    }
                }
                if (bars)
                    close(file)
                if (bars > 1)
                    printf "%s|%s|%s|%s|%s\n", w, m, unit[w, m], b, file > (plot_dir "/bars.list")
            }
        }

        # thread-scaling data for the plots (every metric with numbers)
        if (plot_dir != "" && nt > 1) {
            for (mi = 1; mi <= count["metrics_" w]; mi++) {
                m = list["metrics_" w, mi]
                plotted = ""
                for (ai = 1; ai <= count["allocators"]; ai++) {
                    a = list["allocators", ai]
                    file = plot_dir "/" w "." m ".scaling." a
                    points = 0
                    for (ti = 1; ti <= nt; ti++) {
                        t = tlist[ti]
                        if (((w, t, a) in runs) && !((w, t, a) in failures) && ((w, m, t, a) in values)) {
                            mid = median(values[w, m, t, a])
                            printf "%s %s %s %s\n", t, mid, g_min, g_max > file
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

    # ---- the summary: geometric means of the ratios to glibc ----------------
    printf "### Summary: all workloads\n\n"
    printf "Geometric mean over the workloads of each allocator's cost relative to glibc's: "
    printf "time (the first metric of each workload that is not memory: time per operation "
    printf "or 1 / throughput) and peak RSS (VmHWM; mstress's at equal work).  A workload run at "
    printf "several thread counts "
    printf "counts once (the geometric mean of its thread counts first); a configuration "
    printf "where the allocator or glibc failed a run is left out.  Below 1.00 is better "
    printf "than glibc.  numamalloc's variants (numamalloc_*) that ran in fewer workloads "
    printf "than numamalloc are not listed.\n\n"
    printf "| allocator | time vs glibc | workloads | peak RSS vs glibc | workloads |\n"
    printf "|:--|--:|--:|--:|--:|\n"
    summary_rows = 0
    for (ai = 1; ai <= count["allocators"]; ai++) {
        a = list["allocators", ai]
        t_log = 0; t_n = 0; r_log = 0; r_n = 0
        for (wi = 1; wi <= count["workloads"]; wi++) {
            w = list["workloads", wi]
            tm = ""
            for (mi = 1; mi <= count["metrics_" w]; mi++) {
                m = list["metrics_" w, mi]
                if (unit[w, m] != "MiB") { tm = m; break }
            }
            wt_log = 0; wt_n = 0; wr_log = 0; wr_n = 0
            for (ti = 1; ti <= count["threads_" w]; ti++) {
                t = list["threads_" w, ti]
                if (tm != "") {
                    va = ok_median(w, tm, t, a); vg = ok_median(w, tm, t, "glibc")
                    if (va != "" && vg != "" && va > 0 && vg > 0) {
                        wt_log += log(better[w, tm] == "higher" ? vg / va : va / vg); wt_n++
                    }
                }
                pa = ok_peak(w, t, a); pg = ok_peak(w, t, "glibc")
                if (pa != "" && pg != "" && pa > 0 && pg > 0) {
                    wr_log += log(pa / pg); wr_n++
                }
            }
            if (wt_n) { t_log += wt_log / wt_n; t_n++ }
            if (wr_n) { r_log += wr_log / wr_n; r_n++ }
        }
        if (!t_n && !r_n) continue
        if (a == "numamalloc") numamalloc_workloads = t_n
        if (a ~ /^numamalloc_/ && t_n < numamalloc_workloads) continue
        tr = t_n ? sprintf("%.2f", exp(t_log / t_n)) : "-"
        rr = r_n ? sprintf("%.2f", exp(r_log / r_n)) : "-"
        printf "| %s | %s | %d | %s | %d |\n", a, tr, t_n, rr, r_n
        if (plot_dir != "" && t_n && r_n) {
            printf "%s %s %s\n", a, tr, rr > (plot_dir "/summary.dat")
            summary_rows++
        }
    }
    printf "\n"
    if (plot_dir != "" && summary_rows)
        close(plot_dir "/summary.dat")
}
