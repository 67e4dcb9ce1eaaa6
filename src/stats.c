/*
 * stats.c — statistics: a snapshot of the counters every layer keeps
 * (nm_stats_get) and a readable table of it (nm_stats_print).
 *
 * Reads the node counters (segment layer), the per-class counters of every
 * heap ever made (heap layer) and the process-wide event counters.  Other
 * threads keep running while we read, so a snapshot is approximate.  Never
 * allocates and never uses stdio: safe at exit and inside malloc_stats().
 *
 * May call the heap, large, page, segment, topology and os layers.
 */
#include <string.h>

#include "heap.h"
#include "numamalloc.h"

static uint64_t load(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

nm_export void nm_stats_get(struct nm_stats *out)
{
    memset(out, 0, sizeof *out);
    nm_heap_init();
    out->node_count = nm_topo.node_count < NM_STATS_MAX_NODES ? nm_topo.node_count
                                                              : NM_STATS_MAX_NODES;
    for (int i = 0; i < out->node_count; i++) {
        struct nm_node_state *ns = &nm_proc.nodes[i];
        struct nm_node_stats *n = &out->node[i];
        uint64_t decommitted = load(&ns->decommitted);
        n->node = nm_topo.node_id[i];
        n->mapped = load(&ns->mapped);
        n->committed = n->mapped > decommitted ? n->mapped - decommitted : 0;
        n->in_use = load(&ns->in_use);
        n->segments = load(&ns->segments);
        n->large_blocks = load(&ns->large_blocks);
        n->cached = load(&ns->cached);
    }

    out->class_count = NM_CLASS_COUNT < NM_STATS_MAX_CLASSES ? NM_CLASS_COUNT
                                                             : NM_STATS_MAX_CLASSES;
    for (int c = 0; c < out->class_count; c++) {
        out->size_class[c].block_size = nm_class_size[c];
        out->size_class[c].pages = load(&nm_proc.class_pages[c]);
    }
    for (struct nm_heap *h = atomic_load_explicit(&nm_proc.heaps, memory_order_acquire); h;
         h = h->all_next) {
        for (int c = 0; c < out->class_count; c++) {
            out->size_class[c].allocs += load(&h->allocs[c]);
        }
        out->remote_frees += load(&h->remote_frees);
    }
    out->remote_frees += load(&nm_proc.counters.purge_collected);
    out->large_allocs = load(&nm_proc.counters.large_allocs);
    out->large_frees = load(&nm_proc.counters.large_frees);
    out->purges = load(&nm_proc.counters.purges);
    out->purged_bytes = load(&nm_proc.counters.purged_bytes);
    out->threads = load(&nm_proc.counters.threads);
    out->abandoned = load(&nm_proc.counters.abandoned);
    out->reclaimed = load(&nm_proc.counters.reclaimed);
}

/* ---- printing --------------------------------------------------------------------------- */

struct column {
    const char *title;
    size_t width;
};

static void print_header(int fd, const struct column *cols, size_t n)
{
    nm_line l = { .len = 0 };
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        at += cols[i].width;
        nm_line_str(&l, cols[i].title);
        nm_line_pad(&l, at);
    }
    nm_line_str(&l, "\n");
    nm_line_write(&l, fd);
}

static void print_event(int fd, const char *name, uint64_t value, bool as_size)
{
    nm_line l = { .len = 0 };
    nm_line_str(&l, "  ");
    nm_line_str(&l, name);
    nm_line_pad(&l, 24);
    if (as_size) nm_line_size(&l, value); else nm_line_u64(&l, value);
    nm_line_str(&l, "\n");
    nm_line_write(&l, fd);
}

nm_export void nm_stats_print(int fd)
{
    /* Static: 10 KiB is too much for a small thread stack, and printing
     * twice at once only mixes two snapshots. */
    static struct nm_stats st;
    nm_stats_get(&st);

    nm_line l = { .len = 0 };
    nm_line_str(&l, "numamalloc statistics\n");
    nm_line_write(&l, fd);

    static const struct column node_cols[] = {
        { "  node", 8 }, { "mapped", 13 }, { "committed", 13 }, { "in use", 13 },
        { "cached", 13 }, { "segments", 10 }, { "large", 8 },
    };
    print_header(fd, node_cols, sizeof node_cols / sizeof node_cols[0]);
    for (int i = 0; i < st.node_count; i++) {
        const struct nm_node_stats *n = &st.node[i];
        size_t at = 0;
        nm_line_str(&l, "  ");
        nm_line_u64(&l, (uint64_t)n->node);
        nm_line_pad(&l, at += node_cols[0].width);
        nm_line_size(&l, n->mapped);    nm_line_pad(&l, at += node_cols[1].width);
        nm_line_size(&l, n->committed); nm_line_pad(&l, at += node_cols[2].width);
        nm_line_size(&l, n->in_use);    nm_line_pad(&l, at += node_cols[3].width);
        nm_line_size(&l, n->cached);    nm_line_pad(&l, at += node_cols[4].width);
        nm_line_u64(&l, n->segments);   nm_line_pad(&l, at += node_cols[5].width);
        nm_line_u64(&l, n->large_blocks);
        nm_line_str(&l, "\n");
        nm_line_write(&l, fd);
    }

    static const struct column class_cols[] = {
        { "  block size", 14 }, { "allocs", 16 }, { "pages", 10 }, { "page bytes", 12 },
    };
    print_header(fd, class_cols, sizeof class_cols / sizeof class_cols[0]);
    for (int c = 0; c < st.class_count; c++) {
        const struct nm_class_stats *k = &st.size_class[c];
        if (k->allocs == 0 && k->pages == 0) continue;
        size_t at = 0;
        nm_line_str(&l, "  ");
        nm_line_u64(&l, k->block_size);
        nm_line_pad(&l, at += class_cols[0].width);
        nm_line_u64(&l, k->allocs);     nm_line_pad(&l, at += class_cols[1].width);
        nm_line_u64(&l, k->pages);      nm_line_pad(&l, at += class_cols[2].width);
        nm_line_size(&l, k->pages << (k->block_size <= NM_SMALL_MAX ? NM_SMALL_PAGE_SHIFT
                                                                    : NM_MEDIUM_PAGE_SHIFT));
        nm_line_str(&l, "\n");
        nm_line_write(&l, fd);
    }

    nm_line_str(&l, "events\n");
    nm_line_write(&l, fd);
    print_event(fd, "large allocs", st.large_allocs, false);
    print_event(fd, "large frees", st.large_frees, false);
    print_event(fd, "remote frees", st.remote_frees, false);
    print_event(fd, "purges", st.purges, false);
    print_event(fd, "purged", st.purged_bytes, true);
    print_event(fd, "thread heaps", st.threads, false);
    print_event(fd, "segments abandoned", st.abandoned, false);
    print_event(fd, "segments adopted", st.reclaimed, false);
}
