! fortran_api.f90 — every binding of the numamalloc Fortran module called
! from Fortran, each result checked (tests/programs/fortran.sh runs it):
! topology, node sets and policies (C functions returning structs by value
! included), strings both ways, the array helpers for each type (on a node,
! local, from a heap; zero length, bad node, bad count, overflow with stat),
! the raw C allocation functions, a region and its enforcement report,
! statistics (struct and JSON) and the profiler's answer when off.
! Prints "fortran api: N checks, 0 failed" and exits 0, or names each
! failed check and stops with status 1.
program fortran_api
    use numamalloc
    implicit none
    integer :: checks = 0, failed = 0
    integer(c_int) :: ids(NM_NODE_ID_LIMIT), cpus(4096), n, node, rc
    integer(c_int64_t) :: total, free_bytes, counts(0:NM_NODE_ID_LIMIT - 1)
    type(nm_nodeset) :: set
    type(nm_policy), target :: p, q
    type(nm_node_perf_t) :: perf
    type(nm_enforcement) :: enf
    type(nm_stats) :: st
    type(c_ptr) :: heap, raw, raw2, region
    type(nm_ptr_info_t) :: info
    type(nm_heap_stats_t) :: hstats
    type(nm_migrate_report), target :: report
    integer(c_int64_t), target :: not_ours
    character(len=200) :: err
    character(len=:), allocatable :: json
    real(8), pointer :: r8(:)
    real(4), pointer :: r4(:)
    integer(4), pointer :: i4(:)
    integer(8), pointer :: i8(:)
    integer :: stat, i, e
    integer(c_long) :: pages
    integer(c_int8_t), pointer :: bytes(:)

    ! ---- topology
    n = nm_node_count()
    call check(n >= 1, "nm_node_count >= 1")
    call check(nm_node_ids(ids, size(ids)) == n, "nm_node_ids gives nm_node_count nodes")
    node = ids(1)
    call check(nm_node_distance(node, node) == 10, "nm_node_distance(node, node) == 10")
    call check(nm_node_memory(node, total, free_bytes) == 0 .and. total > 0 .and. free_bytes <= total, &
               "nm_node_memory: total > 0, free <= total")
    call check(nm_node_cpus(node, cpus, size(cpus)) >= 0, "nm_node_cpus >= 0")
    rc = nm_node_has_cpus(node)
    call check(rc == 0 .or. rc == 1, "nm_node_has_cpus is 0 or 1")
    call check(nm_nodes_by_distance(node, ids, size(ids)) == n .and. ids(1) == node, &
               "nm_nodes_by_distance: the node itself first")
    call check(nm_node_of_cpu(0) >= 0, "nm_node_of_cpu(0) is a node")
    rc = nm_node_of_cpu(-1)
    e = nm_errno()
    call check(rc == -1 .and. e == 22, "nm_node_of_cpu(-1): -1, errno EINVAL")
    call check(nm_current_node() >= 0, "nm_current_node >= 0")
    call check(nm_thread_rebind() >= 0, "nm_thread_rebind >= 0")
    rc = nm_node_tier(node)
    e = nm_errno()
    call check(rc >= 0 .or. e == 2, "nm_node_tier: a tier or ENOENT")
    rc = nm_node_perf(node, perf)
    e = nm_errno()
    call check(rc == 0 .or. e == 2, "nm_node_perf: 0 or ENOENT")
    rc = nm_node_tier(NM_NODE_ID_LIMIT + 5)
    e = nm_errno()
    call check(rc == -1 .and. e == 22, "nm_node_tier(bad node): EINVAL")

    ! ---- node sets and policies
    call nm_nodeset_clear(set)
    call nm_nodeset_add(set, node)
    call check(nm_nodeset_has(set, node) == 1, "nm_nodeset_has")
    call check(nm_nodeset_count(set) == 1, "nm_nodeset_count")
    call check(nm_nodeset_count(nm_nodeset_all()) == nm_node_count(), "nm_nodeset_all has every node")
    p = nm_policy_bind(set)
    call check(p%mode == NM_MODE_BIND, "nm_policy_bind (a struct by value): mode")
    call check(nm_nodeset_has(p%nodes, node) == 1, "nm_policy_bind: nodes")
    call check(nm_policy_check(p, err, int(len(err), c_size_t)) == 0, "nm_policy_check(bind:node) == 0")
    call check(nm_policy_format(p) == "bind:" // itoa(node), "nm_policy_format(bind) == 'bind:" // itoa(node) // "'")
    call check(nm_policy_parse("interleave:" // itoa(node), q, err) == 0 .and. err == "", "nm_policy_parse(interleave)")
    call check(q%mode == NM_MODE_INTERLEAVE .and. all(q%nodes%bits == set%bits), "parsed interleave: mode and nodes")
    q = nm_policy_interleave(set)
    call check(nm_policy_format(q) == "interleave:" // itoa(node), "nm_policy_interleave formats back")
    rc = nm_policy_parse("bind:999", q, err)
    e = nm_errno()
    call check(rc == -1 .and. e == 22 .and. index(err, "999") > 0, &
               "nm_policy_parse('bind:999'): -1, EINVAL, a reason naming 999: " // trim(err))
    q = nm_policy_local()
    call check(q%mode == NM_MODE_LOCAL, "nm_policy_local")
    call check(nm_nodeset_count(q%nodes) == 0, "nm_policy_local: no nodes")
    q = nm_policy_preferred(node)
    call check(q%mode == NM_MODE_PREFERRED, "nm_policy_preferred")
    call check(nm_nodeset_has(q%nodes, node) == 1, "nm_policy_preferred: its node")
    q = nm_policy_preferred_many(set)
    call check(q%mode == NM_MODE_PREFERRED_MANY, "nm_policy_preferred_many")
    q = nm_policy_weighted_interleave(set)
    call check(q%mode == NM_MODE_WEIGHTED_INTERLEAVE, "nm_policy_weighted_interleave")

    ! ---- arrays on a node, each kind; nm_where finds every page there
    call nm_alloc_on_node(r8, 1000000, node)            ! default integer count
    r8 = 1.5d0
    counts = 0
    pages = nm_where(r8, counts)
    call check(pages >= 1953 .and. counts(node) == pages, "real(8) array: every page on node " // itoa(node))
    call check(nm_usable_size(c_loc(r8(1))) >= 8000000_c_size_t, "nm_usable_size of the real(8) array")
    call nm_free(r8)
    call check(.not. associated(r8), "nm_free nullifies")
    call nm_alloc_on_node(r4, 300000_8, node)           ! integer(8) count
    r4 = 2.0
    counts = 0
    pages = nm_where(r4, counts)
    call check(pages >= 292 .and. counts(node) == pages .and. all(r4 > 1.5 .and. r4 < 2.5), "real(4) array on the node")
    call nm_free(r4)
    call nm_alloc_on_node(i4, 5000, node)
    i4 = [(i, i = 1, 5000)]
    call check(sum(int(i4, 8)) == 12502500_8, "integer(4) array holds its values")
    call nm_free(i4)
    call nm_alloc_on_node(i8, 5000, node, stat)
    call check(stat == 0 .and. size(i8) == 5000, "integer(8) array with stat")
    i8 = 7
    counts = 0
    call check(nm_where(i8, counts) >= 1 .and. counts(node) >= 1, "integer(8) array on the node")
    call nm_free(i8)
    call nm_alloc_local(r8, 4096, stat)
    call check(stat == 0 .and. size(r8) == 4096, "nm_alloc_local")
    call nm_free(r8)
    ! Zero length: associated, empty, freed without a call.
    call nm_alloc_on_node(r8, 0, node)
    call check(associated(r8) .and. size(r8) == 0, "zero-length array")
    call nm_free(r8)
    ! Errors through stat: no such node, a negative count, an overflow.
    call nm_alloc_on_node(r8, 10, NM_NODE_ID_LIMIT + 7, stat)
    call check(stat == 22 .and. .not. associated(r8), "node that does not exist: stat EINVAL")
    call nm_alloc_on_node(i4, -1, node, stat)
    call check(stat == 22 .and. .not. associated(i4), "negative count: stat EINVAL")
    call nm_alloc_on_node(r8, 2305843009213693952_8, node, stat)   ! 2^61: times 8 overflows 64 bits
    call check(stat == 12 .and. .not. associated(r8), "count * 8 overflows: stat ENOMEM")

    ! ---- a heap with the bind policy
    p = nm_policy_bind(set)
    heap = nm_heap_new(c_loc(p))
    call check(c_associated(heap), "nm_heap_new(bind)")
    q = nm_heap_policy(heap)
    call check(nm_policy_format(q) == "bind:" // itoa(node), "nm_heap_policy")
    call nm_alloc_heap(r8, 100000, heap)
    r8 = 3
    counts = 0
    call check(nm_where(r8, counts) >= 195 .and. counts(node) >= 195, "heap array on its node")
    call nm_free(r8)
    raw = nm_heap_calloc(heap, 10_c_size_t, 100_c_size_t)
    raw = nm_heap_realloc(heap, raw, 5000_c_size_t)
    call check(nm_usable_size(raw) >= 5000, "nm_heap_calloc, nm_heap_realloc")
    raw2 = nm_heap_aligned_alloc(heap, 65536_c_size_t, 100_c_size_t)
    call check(mod(transfer(raw2, 0_c_intptr_t), 65536_c_intptr_t) == 0, "nm_heap_aligned_alloc(65536)")
    call nm_free(raw)
    call nm_heap_destroy(heap)      ! raw2 goes with it
    heap = nm_heap_new_flags(c_null_ptr, 8)
    e = nm_errno()
    call check(.not. c_associated(heap) .and. e == 22, "nm_heap_new_flags(unknown flag): EINVAL")
    heap = nm_heap_new_flags(c_null_ptr, NM_HEAP_STRICT)
    call check(c_associated(heap), "nm_heap_new_flags(local, NM_HEAP_STRICT)")
    call nm_heap_destroy(heap)

    ! ---- flags on every call, sized frees, what a pointer is
    raw = nm_mallocx(5000_c_size_t, ior(ior(nm_align(4096_c_size_t), nm_node(node)), NM_ZERO))
    call check(c_associated(raw) .and. mod(transfer(raw, 0_c_intptr_t), 4096_c_intptr_t) == 0, &
               "nm_mallocx(NM_ALIGN(4096) | NM_NODE(node) | NM_ZERO): aligned")
    call c_f_pointer(raw, bytes, [5000])
    call check(all(bytes == 0), "nm_mallocx(NM_ZERO) zeroes")
    rc = nm_ptr_info(c_loc(bytes(100)), info)
    call check(rc == 0 .and. c_associated(info%start, raw) .and. info%node == node .and. &
               info%usable_size >= 5000, "nm_ptr_info of an interior pointer: the block, its node")
    raw = nm_rallocx(raw, 20000_c_size_t, NM_ZERO)
    call c_f_pointer(raw, bytes, [20000])
    call check(c_associated(raw) .and. all(bytes(5001:) == 0), "nm_rallocx(NM_ZERO) zeroes the growth")
    call nm_free_sized(raw, 20000_c_size_t)
    call check(nm_align(64) == nm_align(64_c_size_t) .and. nm_align(64) == 6, "nm_align of either kind")
    raw = nm_mallocx(100_c_size_t, nm_align(3_c_size_t))
    e = nm_errno()
    call check(.not. c_associated(raw) .and. e == 22, "nm_mallocx(NM_ALIGN(3)): EINVAL")
    rc = nm_ptr_info(c_loc(not_ours), info)
    e = nm_errno()
    call check(rc == -1 .and. e == 22, "nm_ptr_info of a pointer numamalloc does not own: EINVAL")
    raw = nm_aligned_alloc(256_c_size_t, 1000_c_size_t)
    call nm_free_aligned_sized(raw, 256_c_size_t, 1000_c_size_t)

    ! ---- heaps that steer plain malloc, reset, have limits, move
    heap = nm_heap_new(c_null_ptr)
    ! Nothing but these calls while the heap is set: what the Fortran
    ! runtime allocates meanwhile (an I/O buffer) would go with the heap.
    raw2 = nm_thread_set_heap(heap)
    raw = nm_malloc(100_c_size_t)           ! from the set heap
    rc = nm_ptr_info(raw, info)
    raw2 = nm_thread_set_heap(c_null_ptr)
    call check(rc == 0 .and. c_associated(info%heap, heap), "nm_thread_set_heap: nm_malloc comes from the heap")
    call check(c_associated(raw2, heap), "nm_thread_set_heap(NULL) returns the heap that was set")
    call check(nm_heap_reset(heap) == 0, "nm_heap_reset")
    call check(nm_heap_stats(heap, hstats) == 0 .and. hstats%blocks == 0, "after nm_heap_reset: no block")
    call nm_heap_destroy(heap)
    heap = nm_heap_new(c_null_ptr)
    call check(nm_heap_set_limit(heap, 8388608_c_size_t) == 0, "nm_heap_set_limit(8 MiB)")
    raw = nm_heap_malloc(heap, 6291456_c_size_t)
    raw2 = nm_heap_malloc(heap, 6291456_c_size_t)
    e = nm_errno()
    call check(c_associated(raw) .and. .not. c_associated(raw2) .and. e == 12, &
               "a heap limited to 8 MiB: a second 6 MiB block fails with ENOMEM")
    call check(nm_heap_stats(heap, hstats) == 0 .and. hstats%limit == 8388608 .and. &
               hstats%large_blocks == 1, "nm_heap_stats: the limit and one large block")
    rc = nm_heap_migrate(heap, c_loc(p), c_loc(report))
    call check(rc == 0 .and. report%not_moved == 0, "nm_heap_migrate to a policy of this machine")
    call nm_heap_destroy(heap)

    ! ---- the C allocation functions
    raw = nm_malloc(100_c_size_t)
    raw = nm_realloc(raw, 100000_c_size_t)
    call check(nm_usable_size(raw) >= 100000, "nm_malloc, nm_realloc")
    call nm_free(raw)
    raw = nm_calloc(1000_c_size_t, 8_c_size_t)
    call c_f_pointer(raw, bytes, [8000])
    call check(all(bytes == 0), "nm_calloc zeroes")
    call nm_free(raw)
    raw = nm_aligned_alloc(4096_c_size_t, 10_c_size_t)
    call check(mod(transfer(raw, 0_c_intptr_t), 4096_c_intptr_t) == 0, "nm_aligned_alloc(4096)")
    call nm_free(raw)
    raw = nm_aligned_alloc(3_c_size_t, 10_c_size_t)
    e = nm_errno()
    call check(.not. c_associated(raw) .and. e == 22, "nm_aligned_alloc(3): EINVAL")
    raw = nm_malloc_onnode(1000_c_size_t, node)
    raw2 = nm_calloc_onnode(10_c_size_t, 10_c_size_t, node)
    call check(c_associated(raw) .and. c_associated(raw2), "nm_malloc_onnode, nm_calloc_onnode")
    call nm_free(raw)
    call nm_free(raw2)
    call check(nm_reserve(node, 4194304_c_size_t) == 0, "nm_reserve(node, 4 MiB)")
    call nm_trim()

    ! ---- a region, prefaulted, and its enforcement report
    region = nm_region_map(8388608_c_size_t, c_loc(p), NM_PREFAULT_POPULATE, 0)
    call check(c_associated(region), "nm_region_map(8 MiB, bind, populate)")
    call check(nm_region_size(region) == 8388608_c_size_t, "nm_region_size")
    call check(c_associated(nm_region_addr(region)), "nm_region_addr")
    counts = 0
    call check(nm_where(nm_region_addr(region), 8388608_c_size_t, counts, NM_NODE_ID_LIMIT) == 2048 &
               .and. counts(node) == 2048, "nm_where (the C function): 2048 pages on the node")
    call check(nm_region_enforcement(region, enf) == 0 .and. enf%level == NM_ENFORCEMENT_HARD &
               .and. enf%pages == 2048 .and. enf%resident == 2048 .and. enf%on_allowed == 2048, &
               "nm_region_enforcement: hard, 2048 of 2048")
    call check(nm_region_migrate(region, c_loc(p)) == 0, "nm_region_migrate to the same policy")
    call check(nm_region_unmap(region) == 0, "nm_region_unmap")

    ! ---- statistics, profiler
    call nm_stats_get(st)
    call check(st%node_count >= 1 .and. st%node(0)%mapped > 0 .and. st%class_count >= 1 &
               .and. st%size_class(0)%block_size > 0 .and. st%large_allocs >= 1, "nm_stats_get fills the struct")
    json = nm_stats_json()
    call check(index(json, '{"numamalloc":"' // NUMAMALLOC_VERSION_STRING // '"') == 1 &
               .and. json(len(json):) == "}", "nm_stats_json: one JSON object")
    call nm_stats_print(-1)     ! a closed descriptor: writes nothing, returns
    rc = nm_prof_dump()
    e = nm_errno()
    call check(rc == -1 .and. e == 22, "nm_prof_dump with the profiler off: EINVAL")
    call check(nm_prof_dump("/nonexistent/x.heap") == -1, "nm_prof_dump(path) with the profiler off: -1")

    rc = nm_node_of_device("no-such-device-0")
    e = nm_errno()
    call check(rc == -1 .and. e == 19, "nm_node_of_device(unknown): -1, ENODEV")
    rc = nm_node_of_device("/dev/null")
    e = nm_errno()
    call check(rc == -1 .and. e == 6, "nm_node_of_device('/dev/null'): -1, ENXIO")
    raw = nm_malloc_near("no-such-device-0", 100_c_size_t)
    e = nm_errno()
    call check(.not. c_associated(raw) .and. e == 19, "nm_malloc_near(unknown): NULL, ENODEV")

    write (*, '(a, i0, a, i0, a)') "fortran api: ", checks, " checks, ", failed, " failed"
    if (failed /= 0) error stop 1

contains

    subroutine check(ok, what)
        logical, intent(in) :: ok
        character(len=*), intent(in) :: what
        checks = checks + 1
        if (.not. ok) then
            failed = failed + 1
            write (*, '(a, a)') "FAIL: ", what
        end if
    end subroutine

    function itoa(i) result(s)
        integer(c_int), intent(in) :: i
        character(len=:), allocatable :: s
        character(len=16) :: buf
        write (buf, '(i0)') i
        s = trim(buf)
    end function
end program
