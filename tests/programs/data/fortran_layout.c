/* fortran_layout.c — the size and member offsets of numamalloc.h's structs
 * and the values of its enumerators and constants, one per line, in the
 * form fortran_layout.f90 prints them from the Fortran module's BIND(C)
 * types (tests/programs/fortran.sh compares the two). */
#include <numamalloc.h>
#include <stddef.h>
#include <stdio.h>

#define SIZE(type) printf("%s size %zu\n", #type, sizeof(type))
#define OFF(type, member) printf("%s %s %zu\n", #type, #member, offsetof(type, member))
#define VALUE(name) printf("%s %ld\n", #name, (long)(name))

int main(void)
{
    SIZE(nm_nodeset); OFF(nm_nodeset, bits);
    SIZE(nm_policy); OFF(nm_policy, mode); OFF(nm_policy, nodes);
    SIZE(struct nm_node_perf);
    OFF(struct nm_node_perf, read_bandwidth); OFF(struct nm_node_perf, write_bandwidth);
    OFF(struct nm_node_perf, read_latency); OFF(struct nm_node_perf, write_latency);
    SIZE(struct nm_enforcement);
    OFF(struct nm_enforcement, level); OFF(struct nm_enforcement, pages);
    OFF(struct nm_enforcement, resident); OFF(struct nm_enforcement, on_allowed);
    OFF(struct nm_enforcement, per_node);
    SIZE(struct nm_node_stats);
    OFF(struct nm_node_stats, node); OFF(struct nm_node_stats, mapped);
    OFF(struct nm_node_stats, committed); OFF(struct nm_node_stats, in_use);
    OFF(struct nm_node_stats, segments); OFF(struct nm_node_stats, large_blocks);
    OFF(struct nm_node_stats, cached);
    SIZE(struct nm_class_stats);
    OFF(struct nm_class_stats, block_size); OFF(struct nm_class_stats, allocs);
    OFF(struct nm_class_stats, pages);
    SIZE(struct nm_stats);
    OFF(struct nm_stats, node_count); OFF(struct nm_stats, node); OFF(struct nm_stats, class_count);
    OFF(struct nm_stats, size_class); OFF(struct nm_stats, large_allocs);
    OFF(struct nm_stats, large_frees); OFF(struct nm_stats, remote_frees);
    OFF(struct nm_stats, purges); OFF(struct nm_stats, purged_bytes);
    OFF(struct nm_stats, threads); OFF(struct nm_stats, abandoned);
    OFF(struct nm_stats, reclaimed);
    SIZE(struct nm_heap_stats);
    OFF(struct nm_heap_stats, mapped); OFF(struct nm_heap_stats, committed); OFF(struct nm_heap_stats, in_use);
    OFF(struct nm_heap_stats, blocks); OFF(struct nm_heap_stats, large_blocks); OFF(struct nm_heap_stats, charged);
    OFF(struct nm_heap_stats, limit);
    SIZE(struct nm_migrate_report);
    OFF(struct nm_migrate_report, resident); OFF(struct nm_migrate_report, asked); OFF(struct nm_migrate_report, moved);
    OFF(struct nm_migrate_report, not_moved); OFF(struct nm_migrate_report, busy); OFF(struct nm_migrate_report, no_memory);
    OFF(struct nm_migrate_report, other); OFF(struct nm_migrate_report, last_error);
    SIZE(struct nm_ptr_info);
    OFF(struct nm_ptr_info, start); OFF(struct nm_ptr_info, usable_size);
    OFF(struct nm_ptr_info, kind); OFF(struct nm_ptr_info, node);
    OFF(struct nm_ptr_info, heap); OFF(struct nm_ptr_info, policy);
    VALUE(NM_PTR_SMALL); VALUE(NM_PTR_MEDIUM); VALUE(NM_PTR_LARGE);
    VALUE(NM_ZERO); VALUE(NM_STRICT); VALUE(NM_NODE_SHIFT); VALUE(NM_NODE_MASK);
    VALUE(NM_NODE_GIVEN); VALUE(NM_FLAGS_INVALID); VALUE(NM_ALIGN_LG_MASK); VALUE(NM_ALIGN_LG_MAX);
    VALUE(NM_ALIGN(4096)); VALUE(NM_ALIGN(3)); VALUE(NM_NODE(5)); VALUE(NM_NODE(2000));
    VALUE(NM_POLICY_LOCAL); VALUE(NM_POLICY_BIND); VALUE(NM_POLICY_PREFERRED);
    VALUE(NM_POLICY_PREFERRED_MANY); VALUE(NM_POLICY_INTERLEAVE);
    VALUE(NM_POLICY_WEIGHTED_INTERLEAVE);
    VALUE(NM_PREFAULT_NONE); VALUE(NM_PREFAULT_TOUCH); VALUE(NM_PREFAULT_POPULATE);
    VALUE(NM_ENFORCEMENT_HARD); VALUE(NM_ENFORCEMENT_SOFT);
    VALUE(sizeof(enum nm_policy_mode)); VALUE(sizeof(enum nm_prefault));
    VALUE(NM_NODE_ID_LIMIT); VALUE(NM_STATS_MAX_NODES); VALUE(NM_STATS_MAX_CLASSES);
    VALUE(NM_NODESET_WORDS); VALUE(NM_HEAP_STRICT);
    VALUE(NM_REGION_HUGEPAGES); VALUE(NM_REGION_NOHUGEPAGES); VALUE(NM_REGION_HUGETLB);
    VALUE(NUMAMALLOC_VERSION_MAJOR); VALUE(NUMAMALLOC_VERSION_MINOR); VALUE(NUMAMALLOC_VERSION_PATCH);
    printf("NUMAMALLOC_VERSION_STRING %s\n", NUMAMALLOC_VERSION_STRING);
    return 0;
}
