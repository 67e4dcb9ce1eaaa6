/*
 * topology.h — the machine's NUMA nodes, their CPUs, distances and memory,
 * read from sysfs; and the node the calling thread runs on.  May call the
 * os layer only.
 *
 * Nodes have two names: the kernel's node id (sparse: 0, 2, 5 ...) used in
 * syscalls and shown to users, and a dense index 0..node_count-1 used for
 * the allocator's per-node arrays.  Index order is ascending id order.
 */
#ifndef NM_TOPOLOGY_H
#define NM_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NM_MAX_NODES 64      /* nodes the allocator keeps state for */
#define NM_MAX_NODE_ID 1024  /* kernel node ids must be below this */
#define NM_MAX_CPUS 4096     /* CPU numbers must be below this */

struct nm_topology {
    int node_count;                         /* >= 1 */
    int node_id[NM_MAX_NODES];              /* index -> kernel id, ascending */
    int16_t index_of_id[NM_MAX_NODE_ID];    /* kernel id -> index, -1 if none */
    int cpu_limit;                          /* highest CPU number seen + 1 */
    int16_t node_of_cpu[NM_MAX_CPUS];       /* CPU -> node index, -1 if unknown */
    uint16_t cpu_count[NM_MAX_NODES];       /* CPUs per node (0: memory-only) */
    bool has_memory[NM_MAX_NODES];          /* node has memory (MemTotal > 0) */
    bool mem_allowed[NM_MAX_NODES];         /* the process may take the node's memory */
    int16_t home[NM_MAX_NODES];             /* index -> index whose memory serves its CPUs */
    bool mems_limited;                      /* a node with memory is not allowed */
    uint8_t distance[NM_MAX_NODES][NM_MAX_NODES]; /* by index; 10 = local */
    uint64_t mem_total[NM_MAX_NODES];       /* bytes, from nodeN/meminfo */
    uint64_t mem_free[NM_MAX_NODES];        /* bytes, at load time */
    bool fallback;                          /* sysfs unusable: one node 0 */
};

/* Usable nodes.  A node's memory is usable when it has memory and the
 * process's cpuset allows it (mem_allowed: Mems_allowed in /proc/self/status,
 * cgroup cpuset.mems, Slurm --mem-bind, numactl --membind does not change
 * it).  At least one node is usable: a mask that allows none of the nodes
 * with memory is taken as no limit.  home[i] is usable, and is i itself
 * when i is usable, else the usable node nearest to i (by distance, ties
 * by the lower index): the memory that threads running on node i get. */
static inline bool nm_topology_usable(const struct nm_topology *t, int index)
{
    return t->has_memory[index] && t->mem_allowed[index];
}

/* Fill `t` from `<sysfs_root>/devices/system/node` (sysfs_root is "/sys"
 * for the running machine).  The nodes the process may use come from the
 * kernel (get_mempolicy MPOL_F_MEMS_ALLOWED, else the Mems_allowed_list
 * line of /proc/self/status) for "/sys", and from
 * `<sysfs_root>/proc-self-status` (a recorded /proc/self/status, or just
 * its Mems_allowed_list line) for a recorded tree, where a missing file
 * means every node.  Never fails: when the tree is absent,
 * unreadable or inconsistent, `t` describes one node 0 holding every CPU
 * (t->fallback is set).  Nodes beyond NM_MAX_NODES or with ids of
 * NM_MAX_NODE_ID and more are ignored.  Does not allocate. */
void nm_topology_load(struct nm_topology *t, const char *sysfs_root);

/* Re-read only the free memory of each node of `t`. */
void nm_topology_refresh_free(struct nm_topology *t, const char *sysfs_root);
/* The free memory of node `index` of `t` now, in bytes, without changing `t`. */
uint64_t nm_topology_free_now(const struct nm_topology *t, int index, const char *sysfs_root);
/* What node `index` can give now without swapping: its free memory plus
 * its inactive file pages (page cache, which reclaim drops first). */
uint64_t nm_topology_available_now(const struct nm_topology *t, int index, const char *sysfs_root);

/* A path built piece by piece in a fixed buffer (no snprintf, no malloc);
 * `too_long` is set when a piece did not fit. */
struct nm_path {
    char text[1024];
    size_t len;
    bool too_long;
};
void nm_path_add(struct nm_path *p, const char *s);
void nm_path_add_uint(struct nm_path *p, unsigned value);

/* Parse a Linux list ("0-3,8,10-11") into the bit set `set` (bits below
 * `limit` are set, higher values are counted but not stored).  Returns the
 * number of values listed, or -1 when the text is not a list. */
int64_t nm_topology_parse_list(const char *text, uint64_t *set, int limit);
/* The same, and the highest value listed in *highest (-1 for an empty
 * list): whether values at or above `limit` were left out. */
int64_t nm_topology_parse_list_highest(const char *text, uint64_t *set, int limit, int64_t *highest);

/* The process's topology, loaded once by nm_topology_init(). */
extern struct nm_topology nm_topo;
void nm_topology_init(const char *sysfs_root);
/* Read the options and load nm_topo from their sysfs root, once per
 * process (later calls return at once).  Every public entry point that
 * needs the topology calls this first. */
void nm_topology_ensure(void);

/* Dense index of the node the calling thread runs on now.  Reads the
 * kernel's rseq node_id when the kernel provides it (Linux 6.3+, a few
 * loads), else asks getcpu (vDSO).  Cheap enough for every slow path. */
int nm_topology_current_node(void);

/* Dense index of the node whose memory the calling thread gets: the home
 * of the node it runs on (nm_topo.home; itself unless its memory is not
 * usable).  What picks a thread's local arena. */
static inline int nm_topology_home_node(void)
{
    return nm_topo.home[nm_topology_current_node()];
}

/* Whether nm_topology_current_node reads the rseq node id (decided by
 * nm_topology_init; for tests and verbose output). */
bool nm_topology_uses_rseq(void);
/* A word of the calling thread's rseq area that the kernel changes when
 * the thread moves to another node: node_id where nm_topology_uses_rseq(),
 * else cpu_id (glibc 2.35+ registered the area, any kernel with rseq: it
 * changes on every move between CPUs, a superset).  NULL without rseq.
 * Valid while the thread lives. */
const volatile uint32_t *nm_topology_move_word(void);

/* Dense index of a kernel node id, or -1. */
static inline int nm_topology_index(const struct nm_topology *t, int node_id)
{
    if (node_id < 0 || node_id >= NM_MAX_NODE_ID) return -1;
    return t->index_of_id[node_id];
}

#endif
