! fortran_layout.f90 — the size and member offsets of the numamalloc
! module's BIND(C) types and the values of its constants, printed as
! fortran_layout.c prints them from numamalloc.h (tests/programs/fortran.sh
! compares the two; the Fortran names NM_MODE_* and nm_node_perf_t are
! printed under their C names).
program fortran_layout
    use numamalloc
    implicit none
    type(nm_nodeset), target :: set
    type(nm_policy), target :: pol
    type(nm_node_perf_t), target :: perf
    type(nm_enforcement), target :: enf
    type(nm_node_stats), target :: ns
    type(nm_class_stats), target :: cs
    type(nm_stats), target :: st
    type(nm_ptr_info_t), target :: pi
    type(nm_heap_stats_t), target :: hs
    type(nm_migrate_report), target :: mr

    call size_line("nm_nodeset", c_sizeof(set))
    call off("nm_nodeset", "bits", c_loc(set), c_loc(set%bits))
    call size_line("nm_policy", c_sizeof(pol))
    call off("nm_policy", "mode", c_loc(pol), c_loc(pol%mode))
    call off("nm_policy", "nodes", c_loc(pol), c_loc(pol%nodes))
    call size_line("struct nm_node_perf", c_sizeof(perf))
    call off("struct nm_node_perf", "read_bandwidth", c_loc(perf), c_loc(perf%read_bandwidth))
    call off("struct nm_node_perf", "write_bandwidth", c_loc(perf), c_loc(perf%write_bandwidth))
    call off("struct nm_node_perf", "read_latency", c_loc(perf), c_loc(perf%read_latency))
    call off("struct nm_node_perf", "write_latency", c_loc(perf), c_loc(perf%write_latency))
    call size_line("struct nm_enforcement", c_sizeof(enf))
    call off("struct nm_enforcement", "level", c_loc(enf), c_loc(enf%level))
    call off("struct nm_enforcement", "pages", c_loc(enf), c_loc(enf%pages))
    call off("struct nm_enforcement", "resident", c_loc(enf), c_loc(enf%resident))
    call off("struct nm_enforcement", "on_allowed", c_loc(enf), c_loc(enf%on_allowed))
    call off("struct nm_enforcement", "per_node", c_loc(enf), c_loc(enf%per_node))
    call size_line("struct nm_node_stats", c_sizeof(ns))
    call off("struct nm_node_stats", "node", c_loc(ns), c_loc(ns%node))
    call off("struct nm_node_stats", "mapped", c_loc(ns), c_loc(ns%mapped))
    call off("struct nm_node_stats", "committed", c_loc(ns), c_loc(ns%committed))
    call off("struct nm_node_stats", "in_use", c_loc(ns), c_loc(ns%in_use))
    call off("struct nm_node_stats", "segments", c_loc(ns), c_loc(ns%segments))
    call off("struct nm_node_stats", "large_blocks", c_loc(ns), c_loc(ns%large_blocks))
    call off("struct nm_node_stats", "cached", c_loc(ns), c_loc(ns%cached))
    call size_line("struct nm_class_stats", c_sizeof(cs))
    call off("struct nm_class_stats", "block_size", c_loc(cs), c_loc(cs%block_size))
    call off("struct nm_class_stats", "allocs", c_loc(cs), c_loc(cs%allocs))
    call off("struct nm_class_stats", "pages", c_loc(cs), c_loc(cs%pages))
    call size_line("struct nm_stats", c_sizeof(st))
    call off("struct nm_stats", "node_count", c_loc(st), c_loc(st%node_count))
    call off("struct nm_stats", "node", c_loc(st), c_loc(st%node))
    call off("struct nm_stats", "class_count", c_loc(st), c_loc(st%class_count))
    call off("struct nm_stats", "size_class", c_loc(st), c_loc(st%size_class))
    call off("struct nm_stats", "large_allocs", c_loc(st), c_loc(st%large_allocs))
    call off("struct nm_stats", "large_frees", c_loc(st), c_loc(st%large_frees))
    call off("struct nm_stats", "remote_frees", c_loc(st), c_loc(st%remote_frees))
    call off("struct nm_stats", "purges", c_loc(st), c_loc(st%purges))
    call off("struct nm_stats", "purged_bytes", c_loc(st), c_loc(st%purged_bytes))
    call off("struct nm_stats", "threads", c_loc(st), c_loc(st%threads))
    call off("struct nm_stats", "abandoned", c_loc(st), c_loc(st%abandoned))
    call off("struct nm_stats", "reclaimed", c_loc(st), c_loc(st%reclaimed))
    call size_line("struct nm_heap_stats", c_sizeof(hs))
    call off("struct nm_heap_stats", "mapped", c_loc(hs), c_loc(hs%mapped))
    call off("struct nm_heap_stats", "committed", c_loc(hs), c_loc(hs%committed))
    call off("struct nm_heap_stats", "in_use", c_loc(hs), c_loc(hs%in_use))
    call off("struct nm_heap_stats", "blocks", c_loc(hs), c_loc(hs%blocks))
    call off("struct nm_heap_stats", "large_blocks", c_loc(hs), c_loc(hs%large_blocks))
    call off("struct nm_heap_stats", "charged", c_loc(hs), c_loc(hs%charged))
    call off("struct nm_heap_stats", "limit", c_loc(hs), c_loc(hs%limit))
    call size_line("struct nm_migrate_report", c_sizeof(mr))
    call off("struct nm_migrate_report", "resident", c_loc(mr), c_loc(mr%resident))
    call off("struct nm_migrate_report", "asked", c_loc(mr), c_loc(mr%asked))
    call off("struct nm_migrate_report", "moved", c_loc(mr), c_loc(mr%moved))
    call off("struct nm_migrate_report", "not_moved", c_loc(mr), c_loc(mr%not_moved))
    call off("struct nm_migrate_report", "busy", c_loc(mr), c_loc(mr%busy))
    call off("struct nm_migrate_report", "no_memory", c_loc(mr), c_loc(mr%no_memory))
    call off("struct nm_migrate_report", "other", c_loc(mr), c_loc(mr%other))
    call off("struct nm_migrate_report", "last_error", c_loc(mr), c_loc(mr%last_error))
    call size_line("struct nm_ptr_info", c_sizeof(pi))
    call off("struct nm_ptr_info", "start", c_loc(pi), c_loc(pi%start))
    call off("struct nm_ptr_info", "usable_size", c_loc(pi), c_loc(pi%usable_size))
    call off("struct nm_ptr_info", "kind", c_loc(pi), c_loc(pi%kind))
    call off("struct nm_ptr_info", "node", c_loc(pi), c_loc(pi%node))
    call off("struct nm_ptr_info", "heap", c_loc(pi), c_loc(pi%heap))
    call off("struct nm_ptr_info", "policy", c_loc(pi), c_loc(pi%policy))
    call value("NM_PTR_SMALL", int(NM_PTR_SMALL, c_size_t))
    call value("NM_PTR_MEDIUM", int(NM_PTR_MEDIUM, c_size_t))
    call value("NM_PTR_LARGE", int(NM_PTR_LARGE, c_size_t))
    call value("NM_ZERO", int(NM_ZERO, c_size_t))
    call value("NM_STRICT", int(NM_STRICT, c_size_t))
    call value("NM_NODE_SHIFT", int(NM_NODE_SHIFT, c_size_t))
    call value("NM_NODE_MASK", int(NM_NODE_MASK, c_size_t))
    call value("NM_NODE_GIVEN", int(NM_NODE_GIVEN, c_size_t))
    call value("NM_FLAGS_INVALID", int(NM_FLAGS_INVALID, c_size_t))
    call value("NM_ALIGN_LG_MASK", int(NM_ALIGN_LG_MASK, c_size_t))
    call value("NM_ALIGN_LG_MAX", int(NM_ALIGN_LG_MAX, c_size_t))
    call value("NM_ALIGN(4096)", int(nm_align(4096_c_size_t), c_size_t))
    call value("NM_ALIGN(3)", int(nm_align(3_c_size_t), c_size_t))
    call value("NM_NODE(5)", int(nm_node(5), c_size_t))
    call value("NM_NODE(2000)", int(nm_node(2000), c_size_t))
    call value("NM_POLICY_LOCAL", int(NM_MODE_LOCAL, c_size_t))
    call value("NM_POLICY_BIND", int(NM_MODE_BIND, c_size_t))
    call value("NM_POLICY_PREFERRED", int(NM_MODE_PREFERRED, c_size_t))
    call value("NM_POLICY_PREFERRED_MANY", int(NM_MODE_PREFERRED_MANY, c_size_t))
    call value("NM_POLICY_INTERLEAVE", int(NM_MODE_INTERLEAVE, c_size_t))
    call value("NM_POLICY_WEIGHTED_INTERLEAVE", int(NM_MODE_WEIGHTED_INTERLEAVE, c_size_t))
    call value("NM_PREFAULT_NONE", int(NM_PREFAULT_NONE, c_size_t))
    call value("NM_PREFAULT_TOUCH", int(NM_PREFAULT_TOUCH, c_size_t))
    call value("NM_PREFAULT_POPULATE", int(NM_PREFAULT_POPULATE, c_size_t))
    call value("NM_ENFORCEMENT_HARD", int(NM_ENFORCEMENT_HARD, c_size_t))
    call value("NM_ENFORCEMENT_SOFT", int(NM_ENFORCEMENT_SOFT, c_size_t))
    call value("sizeof(enum nm_policy_mode)", c_sizeof(NM_MODE_LOCAL))
    call value("sizeof(enum nm_prefault)", c_sizeof(NM_PREFAULT_NONE))
    call value("NM_NODE_ID_LIMIT", int(NM_NODE_ID_LIMIT, c_size_t))
    call value("NM_STATS_MAX_NODES", int(NM_STATS_MAX_NODES, c_size_t))
    call value("NM_STATS_MAX_CLASSES", int(NM_STATS_MAX_CLASSES, c_size_t))
    call value("NM_NODESET_WORDS", int(NM_NODESET_WORDS, c_size_t))
    call value("NM_HEAP_STRICT", int(NM_HEAP_STRICT, c_size_t))
    call value("NM_REGION_HUGEPAGES", int(NM_REGION_HUGEPAGES, c_size_t))
    call value("NM_REGION_NOHUGEPAGES", int(NM_REGION_NOHUGEPAGES, c_size_t))
    call value("NM_REGION_HUGETLB", int(NM_REGION_HUGETLB, c_size_t))
    call value("NUMAMALLOC_VERSION_MAJOR", int(NUMAMALLOC_VERSION_MAJOR, c_size_t))
    call value("NUMAMALLOC_VERSION_MINOR", int(NUMAMALLOC_VERSION_MINOR, c_size_t))
    call value("NUMAMALLOC_VERSION_PATCH", int(NUMAMALLOC_VERSION_PATCH, c_size_t))
    write (*, '(a, 1x, a)') "NUMAMALLOC_VERSION_STRING", NUMAMALLOC_VERSION_STRING

contains

    subroutine size_line(type_name, bytes)
        character(len=*), intent(in) :: type_name
        integer(c_size_t), intent(in) :: bytes
        write (*, '(a, " size ", i0)') type_name, bytes
    end subroutine

    subroutine off(type_name, member, base, at)
        character(len=*), intent(in) :: type_name, member
        type(c_ptr), intent(in) :: base, at
        write (*, '(a, 1x, a, 1x, i0)') type_name, member, &
            transfer(at, 0_c_intptr_t) - transfer(base, 0_c_intptr_t)
    end subroutine

    subroutine value(name, v)
        character(len=*), intent(in) :: name
        integer(c_size_t), intent(in) :: v
        write (*, '(a, 1x, i0)') name, v
    end subroutine
end program
