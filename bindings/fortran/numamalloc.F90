! numamalloc.F90 — Fortran bindings of numamalloc's API (include/numamalloc.h).
!
!   use numamalloc
!   real(8), pointer :: a(:)
!   call nm_alloc_on_node(a, n, node)   ! a(1:n) bound to node `node`
!   ...
!   call nm_free(a)
!
! Every function of numamalloc.h has an interface here under its C name,
! with ISO_C_BINDING types (size_t is integer(c_size_t), uint64_t
! integer(c_int64_t), pointers type(c_ptr)), and its structs are BIND(C)
! derived types laid out as in C (nm_nodeset, nm_policy, nm_node_perf_t,
! nm_enforcement, nm_node_stats, nm_class_stats, nm_stats, nm_ptr_info_t,
! nm_heap_stats_t, nm_migrate_report; arrays in them
! start at index 0, as in C).  Fortran names ignore case, so two C names
! change: the policy modes are NM_MODE_LOCAL, NM_MODE_BIND, ... (not
! NM_POLICY_*, which would be the functions nm_policy_*), and struct
! nm_node_perf is type nm_node_perf_t, struct nm_ptr_info type
! nm_ptr_info_t, struct nm_heap_stats type nm_heap_stats_t, and the macros NM_ALIGN(a) and NM_NODE(n) are the
! functions nm_align(a) and nm_node(n).  Functions taking or returning C
! strings are bound as nm_policy_parse_c, nm_policy_format_c,
! nm_stats_json_c, nm_prof_dump_c, nm_node_of_device_c and
! nm_malloc_near_c, with Fortran-string versions under the C names.  On top of them, for Fortran programs:
!   nm_alloc_on_node(a, n, node [, stat])  allocate a rank-1 pointer array of
!                       real(4), real(8), integer(4) or integer(8) on a node
!   nm_alloc_local(a, n [, stat])          the same on the calling thread's node
!   nm_alloc_heap(a, n, heap [, stat])     the same from a heap (nm_heap_new)
!   nm_free(a)                             free such an array, nullify a
!   nm_where(a, counts)                    nm_where over the whole array
!   nm_errno()                             errno of the last failed call
!   nm_policy_parse(text, p [, err])       text in, trimmed message out
!   nm_policy_format(p)                    the policy as a Fortran string
!   nm_stats_json()                        the statistics as a Fortran string
!   nm_prof_dump([path])                   path optional (NULL: the default)
!   nm_node_of_device(dev)                 the device named by a Fortran string
!   nm_malloc_near(dev, size)              the same, for a block near it
! An allocation without `stat` that fails stops the program with a message,
! as ALLOCATE does; with `stat`, stat is errno (0 on success) and the array
! is disassociated.  n is an integer of any kind; anything else is EINVAL
! ("n must be an integer").  A zero-length array takes no memory.
!
! The array procedures are written once, in numamalloc_array.inc, included
! here for each element type: compile this file with the preprocessor (a
! capital .F90 gets it from gfortran, ifx and flang; the .inc beside it).
!
! Not bound: the variable nm_conf (a C program's own default configuration,
! read before main; a Fortran program sets NUMAMALLOC_CONF instead).
module numamalloc
    use, intrinsic :: iso_c_binding
    use, intrinsic :: iso_fortran_env, only: error_unit
    implicit none
    private :: error_unit

    integer(c_int), parameter :: NUMAMALLOC_VERSION_MAJOR = 0
    integer(c_int), parameter :: NUMAMALLOC_VERSION_MINOR = 1
    integer(c_int), parameter :: NUMAMALLOC_VERSION_PATCH = 0
    character(len=*), parameter :: NUMAMALLOC_VERSION_STRING = "0.1.0"

    integer(c_int), parameter :: NM_NODE_ID_LIMIT = 1024
    integer(c_int), parameter :: NM_STATS_MAX_NODES = 64
    integer(c_int), parameter :: NM_STATS_MAX_CLASSES = 96
    integer(c_int), parameter :: NM_NODESET_WORDS = NM_NODE_ID_LIMIT / 64

    integer(c_int), parameter :: NM_HEAP_STRICT = 1
    integer(c_int), parameter :: NM_REGION_HUGEPAGES = 1
    integer(c_int), parameter :: NM_REGION_NOHUGEPAGES = 2
    integer(c_int), parameter :: NM_REGION_HUGETLB = 4

    ! enum nm_policy_mode.  Fortran names ignore case, so C's NM_POLICY_LOCAL
    ! and the function nm_policy_local would be one name: the modes are
    ! NM_MODE_* here.
    enum, bind(c)
        enumerator :: NM_MODE_LOCAL, NM_MODE_BIND, NM_MODE_PREFERRED, &
                      NM_MODE_PREFERRED_MANY, NM_MODE_INTERLEAVE, NM_MODE_WEIGHTED_INTERLEAVE
    end enum
    enum, bind(c)   ! enum nm_prefault
        enumerator :: NM_PREFAULT_NONE, NM_PREFAULT_TOUCH, NM_PREFAULT_POPULATE
    end enum
    enum, bind(c)   ! enum nm_enforcement_level
        enumerator :: NM_ENFORCEMENT_HARD, NM_ENFORCEMENT_SOFT
    end enum
    enum, bind(c)   ! enum nm_ptr_kind
        enumerator :: NM_PTR_SMALL, NM_PTR_MEDIUM, NM_PTR_LARGE
    end enum

    ! nm_mallocx / nm_rallocx flags: NM_ZERO, NM_STRICT, and the functions
    ! nm_align(a) and nm_node(n) for C's macros NM_ALIGN(a) and NM_NODE(n)
    ! (combine with ior).
    integer(c_int), parameter :: NM_ALIGN_LG_MASK = 63
    integer(c_int), parameter :: NM_ALIGN_LG_MAX = 30
    integer(c_int), parameter :: NM_ZERO = 64
    integer(c_int), parameter :: NM_STRICT = 128
    integer(c_int), parameter :: NM_NODE_SHIFT = 8
    integer(c_int), parameter :: NM_NODE_MASK = 1023 * 256
    integer(c_int), parameter :: NM_NODE_GIVEN = 262144
    integer(c_int), parameter :: NM_FLAGS_INVALID = 1073741824

    type, bind(c) :: nm_nodeset
        integer(c_int64_t) :: bits(0:NM_NODESET_WORDS - 1) = 0   ! bit i of the set: node id i
    end type

    type, bind(c) :: nm_policy
        integer(c_int) :: mode = NM_MODE_LOCAL
        type(nm_nodeset) :: nodes
    end type

    ! struct nm_node_perf (named _t: the function nm_node_perf fills it)
    type, bind(c) :: nm_node_perf_t
        integer(c_int64_t) :: read_bandwidth, write_bandwidth   ! MB/s, 0 if unknown
        integer(c_int64_t) :: read_latency, write_latency       ! ns, 0 if unknown
    end type

    type, bind(c) :: nm_enforcement
        integer(c_int) :: level
        integer(c_int64_t) :: pages, resident, on_allowed
        integer(c_int64_t) :: per_node(0:NM_STATS_MAX_NODES - 1)   ! by node index, as in C
    end type

    type, bind(c) :: nm_node_stats
        integer(c_int) :: node
        integer(c_int64_t) :: mapped, committed, in_use, segments, large_blocks, cached
    end type

    type, bind(c) :: nm_class_stats
        integer(c_int64_t) :: block_size, allocs, pages
    end type

    ! struct nm_ptr_info (nm_ptr_info fills it); kind is an NM_PTR_* value,
    ! heap the nm_heap_t the block belongs to (c_null_ptr: none)
    type, bind(c) :: nm_ptr_info_t
        type(c_ptr) :: start = c_null_ptr
        integer(c_size_t) :: usable_size = 0
        integer(c_int) :: kind = NM_PTR_SMALL
        integer(c_int) :: node = -1
        type(c_ptr) :: heap = c_null_ptr
        type(nm_policy) :: policy
    end type

    ! struct nm_heap_stats (named _t: the function nm_heap_stats fills it)
    type, bind(c) :: nm_heap_stats_t
        integer(c_int64_t) :: mapped = 0, committed = 0, in_use = 0, blocks = 0
        integer(c_int64_t) :: large_blocks = 0, charged = 0, limit = 0
    end type

    type, bind(c) :: nm_migrate_report
        integer(c_int64_t) :: resident = 0, asked = 0, moved = 0, not_moved = 0
        integer(c_int64_t) :: busy = 0, no_memory = 0, other = 0
        integer(c_int) :: last_error = 0
    end type

    type, bind(c) :: nm_stats
        integer(c_int) :: node_count
        type(nm_node_stats) :: node(0:NM_STATS_MAX_NODES - 1)
        integer(c_int) :: class_count
        type(nm_class_stats) :: size_class(0:NM_STATS_MAX_CLASSES - 1)
        integer(c_int64_t) :: large_allocs, large_frees, remote_frees, purges, purged_bytes
        integer(c_int64_t) :: threads, abandoned, reclaimed
    end type

    ! ---- the C functions, under their C names ------------------------------------------
    interface
        ! Core allocation
        function nm_malloc(size) bind(c, name="nm_malloc")
            import :: c_ptr, c_size_t
            integer(c_size_t), value :: size
            type(c_ptr) :: nm_malloc
        end function
        ! Flags on every call, sized frees, what a pointer is
        function nm_mallocx(size, flags) bind(c, name="nm_mallocx")
            import :: c_ptr, c_size_t, c_int
            integer(c_size_t), value :: size
            integer(c_int), value :: flags
            type(c_ptr) :: nm_mallocx
        end function
        function nm_rallocx(ptr, size, flags) bind(c, name="nm_rallocx")
            import :: c_ptr, c_size_t, c_int
            type(c_ptr), value :: ptr
            integer(c_size_t), value :: size
            integer(c_int), value :: flags
            type(c_ptr) :: nm_rallocx
        end function
        subroutine nm_free_sized(ptr, size) bind(c, name="nm_free_sized")
            import :: c_ptr, c_size_t
            type(c_ptr), value :: ptr
            integer(c_size_t), value :: size
        end subroutine
        subroutine nm_free_aligned_sized(ptr, alignment, size) bind(c, name="nm_free_aligned_sized")
            import :: c_ptr, c_size_t
            type(c_ptr), value :: ptr
            integer(c_size_t), value :: alignment, size
        end subroutine
        function nm_ptr_info(ptr, info) bind(c, name="nm_ptr_info")
            import :: c_ptr, c_int, nm_ptr_info_t
            type(c_ptr), value :: ptr
            type(nm_ptr_info_t), intent(out) :: info
            integer(c_int) :: nm_ptr_info
        end function
        function nm_calloc(count, size) bind(c, name="nm_calloc")
            import :: c_ptr, c_size_t
            integer(c_size_t), value :: count, size
            type(c_ptr) :: nm_calloc
        end function
        function nm_realloc(ptr, size) bind(c, name="nm_realloc")
            import :: c_ptr, c_size_t
            type(c_ptr), value :: ptr
            integer(c_size_t), value :: size
            type(c_ptr) :: nm_realloc
        end function
        function nm_aligned_alloc(alignment, size) bind(c, name="nm_aligned_alloc")
            import :: c_ptr, c_size_t
            integer(c_size_t), value :: alignment, size
            type(c_ptr) :: nm_aligned_alloc
        end function
        function nm_usable_size(ptr) bind(c, name="nm_usable_size")
            import :: c_ptr, c_size_t
            type(c_ptr), value :: ptr
            integer(c_size_t) :: nm_usable_size
        end function
        function nm_thread_rebind() bind(c, name="nm_thread_rebind")
            import :: c_int
            integer(c_int) :: nm_thread_rebind
        end function
        subroutine nm_trim() bind(c, name="nm_trim")
        end subroutine

        ! Topology
        function nm_node_count() bind(c, name="nm_node_count")
            import :: c_int
            integer(c_int) :: nm_node_count
        end function
        function nm_node_ids(ids, max) bind(c, name="nm_node_ids")
            import :: c_int
            integer(c_int), intent(out) :: ids(*)
            integer(c_int), value :: max
            integer(c_int) :: nm_node_ids
        end function
        function nm_node_of_cpu(cpu) bind(c, name="nm_node_of_cpu")
            import :: c_int
            integer(c_int), value :: cpu
            integer(c_int) :: nm_node_of_cpu
        end function
        function nm_current_node() bind(c, name="nm_current_node")
            import :: c_int
            integer(c_int) :: nm_current_node
        end function
        function nm_node_distance(from, to) bind(c, name="nm_node_distance")
            import :: c_int
            integer(c_int), value :: from, to
            integer(c_int) :: nm_node_distance
        end function
        function nm_node_cpus(node, cpus, max) bind(c, name="nm_node_cpus")
            import :: c_int
            integer(c_int), value :: node, max
            integer(c_int), intent(out) :: cpus(*)
            integer(c_int) :: nm_node_cpus
        end function
        function nm_node_memory(node, total, free_bytes) bind(c, name="nm_node_memory")
            import :: c_int, c_int64_t
            integer(c_int), value :: node
            integer(c_int64_t), intent(out) :: total, free_bytes
            integer(c_int) :: nm_node_memory
        end function
        function nm_node_has_cpus(node) bind(c, name="nm_node_has_cpus")
            import :: c_int
            integer(c_int), value :: node
            integer(c_int) :: nm_node_has_cpus
        end function
        function nm_nodes_by_distance(node, ids, max) bind(c, name="nm_nodes_by_distance")
            import :: c_int
            integer(c_int), value :: node, max
            integer(c_int), intent(out) :: ids(*)
            integer(c_int) :: nm_nodes_by_distance
        end function

        ! Node sets and policies
        subroutine nm_nodeset_clear(set) bind(c, name="nm_nodeset_clear")
            import :: nm_nodeset
            type(nm_nodeset), intent(inout) :: set
        end subroutine
        subroutine nm_nodeset_add(set, node) bind(c, name="nm_nodeset_add")
            import :: nm_nodeset, c_int
            type(nm_nodeset), intent(inout) :: set
            integer(c_int), value :: node
        end subroutine
        function nm_nodeset_has(set, node) bind(c, name="nm_nodeset_has")
            import :: nm_nodeset, c_int
            type(nm_nodeset), intent(in) :: set
            integer(c_int), value :: node
            integer(c_int) :: nm_nodeset_has
        end function
        function nm_nodeset_count(set) bind(c, name="nm_nodeset_count")
            import :: nm_nodeset, c_int
            type(nm_nodeset), intent(in) :: set
            integer(c_int) :: nm_nodeset_count
        end function
        function nm_nodeset_all() bind(c, name="nm_nodeset_all")
            import :: nm_nodeset
            type(nm_nodeset) :: nm_nodeset_all
        end function
        function nm_policy_local() bind(c, name="nm_policy_local")
            import :: nm_policy
            type(nm_policy) :: nm_policy_local
        end function
        function nm_policy_bind(nodes) bind(c, name="nm_policy_bind")
            import :: nm_policy, nm_nodeset
            type(nm_nodeset), intent(in) :: nodes
            type(nm_policy) :: nm_policy_bind
        end function
        function nm_policy_preferred(node) bind(c, name="nm_policy_preferred")
            import :: nm_policy, c_int
            integer(c_int), value :: node
            type(nm_policy) :: nm_policy_preferred
        end function
        function nm_policy_preferred_many(nodes) bind(c, name="nm_policy_preferred_many")
            import :: nm_policy, nm_nodeset
            type(nm_nodeset), intent(in) :: nodes
            type(nm_policy) :: nm_policy_preferred_many
        end function
        function nm_policy_interleave(nodes) bind(c, name="nm_policy_interleave")
            import :: nm_policy, nm_nodeset
            type(nm_nodeset), intent(in) :: nodes
            type(nm_policy) :: nm_policy_interleave
        end function
        function nm_policy_weighted_interleave(nodes) bind(c, name="nm_policy_weighted_interleave")
            import :: nm_policy, nm_nodeset
            type(nm_nodeset), intent(in) :: nodes
            type(nm_policy) :: nm_policy_weighted_interleave
        end function
        ! text and err are NUL-terminated C strings (the Fortran nm_policy_parse
        ! below takes Fortran strings).
        function nm_policy_parse_c(text, out, err, err_len) bind(c, name="nm_policy_parse")
            import :: nm_policy, c_char, c_int, c_size_t
            character(kind=c_char), intent(in) :: text(*)
            type(nm_policy), intent(out) :: out
            character(kind=c_char), intent(out) :: err(*)
            integer(c_size_t), value :: err_len
            integer(c_int) :: nm_policy_parse_c
        end function
        function nm_policy_check(p, err, err_len) bind(c, name="nm_policy_check")
            import :: nm_policy, c_char, c_int, c_size_t
            type(nm_policy), intent(in) :: p
            character(kind=c_char), intent(out) :: err(*)
            integer(c_size_t), value :: err_len
            integer(c_int) :: nm_policy_check
        end function
        function nm_policy_format_c(p, buf, len) bind(c, name="nm_policy_format")
            import :: nm_policy, c_char, c_int, c_size_t
            type(nm_policy), intent(in) :: p
            character(kind=c_char), intent(out) :: buf(*)
            integer(c_size_t), value :: len
            integer(c_int) :: nm_policy_format_c
        end function

        ! Allocation on a given node
        function nm_malloc_onnode(size, node) bind(c, name="nm_malloc_onnode")
            import :: c_ptr, c_size_t, c_int
            integer(c_size_t), value :: size
            integer(c_int), value :: node
            type(c_ptr) :: nm_malloc_onnode
        end function
        function nm_calloc_onnode(count, size, node) bind(c, name="nm_calloc_onnode")
            import :: c_ptr, c_size_t, c_int
            integer(c_size_t), value :: count, size
            integer(c_int), value :: node
            type(c_ptr) :: nm_calloc_onnode
        end function
        function nm_reserve(node, bytes) bind(c, name="nm_reserve")
            import :: c_int, c_size_t
            integer(c_int), value :: node
            integer(c_size_t), value :: bytes
            integer(c_int) :: nm_reserve
        end function

        ! Heaps with a policy (a heap is a type(c_ptr); policy may be c_null_ptr for local)
        function nm_heap_new(policy) bind(c, name="nm_heap_new")
            import :: c_ptr
            type(c_ptr), value :: policy
            type(c_ptr) :: nm_heap_new
        end function
        function nm_heap_reset(heap) bind(c, name="nm_heap_reset")
            import :: c_ptr, c_int
            type(c_ptr), value :: heap
            integer(c_int) :: nm_heap_reset
        end function
        function nm_heap_stats(heap, out) bind(c, name="nm_heap_stats")
            import :: c_ptr, c_int, nm_heap_stats_t
            type(c_ptr), value :: heap
            type(nm_heap_stats_t), intent(out) :: out
            integer(c_int) :: nm_heap_stats
        end function
        function nm_heap_set_limit(heap, bytes) bind(c, name="nm_heap_set_limit")
            import :: c_ptr, c_int, c_size_t
            type(c_ptr), value :: heap
            integer(c_size_t), value :: bytes
            integer(c_int) :: nm_heap_set_limit
        end function
        ! policy and report: c_loc of a target, or c_null_ptr
        function nm_heap_migrate(heap, policy, report) bind(c, name="nm_heap_migrate")
            import :: c_ptr, c_int
            type(c_ptr), value :: heap, policy, report
            integer(c_int) :: nm_heap_migrate
        end function
        function nm_thread_set_heap(heap) bind(c, name="nm_thread_set_heap")
            import :: c_ptr
            type(c_ptr), value :: heap
            type(c_ptr) :: nm_thread_set_heap
        end function
        function nm_heap_new_flags(policy, flags) bind(c, name="nm_heap_new_flags")
            import :: c_ptr, c_int
            type(c_ptr), value :: policy
            integer(c_int), value :: flags
            type(c_ptr) :: nm_heap_new_flags
        end function
        function nm_heap_mallocx(heap, size, flags) bind(c, name="nm_heap_mallocx")
            import :: c_ptr, c_size_t, c_int
            type(c_ptr), value :: heap
            integer(c_size_t), value :: size
            integer(c_int), value :: flags
            type(c_ptr) :: nm_heap_mallocx
        end function
        function nm_heap_malloc(heap, size) bind(c, name="nm_heap_malloc")
            import :: c_ptr, c_size_t
            type(c_ptr), value :: heap
            integer(c_size_t), value :: size
            type(c_ptr) :: nm_heap_malloc
        end function
        function nm_heap_calloc(heap, count, size) bind(c, name="nm_heap_calloc")
            import :: c_ptr, c_size_t
            type(c_ptr), value :: heap
            integer(c_size_t), value :: count, size
            type(c_ptr) :: nm_heap_calloc
        end function
        function nm_heap_realloc(heap, ptr, size) bind(c, name="nm_heap_realloc")
            import :: c_ptr, c_size_t
            type(c_ptr), value :: heap, ptr
            integer(c_size_t), value :: size
            type(c_ptr) :: nm_heap_realloc
        end function
        function nm_heap_aligned_alloc(heap, alignment, size) bind(c, name="nm_heap_aligned_alloc")
            import :: c_ptr, c_size_t
            type(c_ptr), value :: heap
            integer(c_size_t), value :: alignment, size
            type(c_ptr) :: nm_heap_aligned_alloc
        end function
        function nm_heap_policy(heap) bind(c, name="nm_heap_policy")
            import :: c_ptr, nm_policy
            type(c_ptr), value :: heap
            type(nm_policy) :: nm_heap_policy
        end function
        subroutine nm_heap_destroy(heap) bind(c, name="nm_heap_destroy")
            import :: c_ptr
            type(c_ptr), value :: heap
        end subroutine

        ! Memory tiers
        function nm_node_tier(node) bind(c, name="nm_node_tier")
            import :: c_int
            integer(c_int), value :: node
            integer(c_int) :: nm_node_tier
        end function
        function nm_node_perf(node, out) bind(c, name="nm_node_perf")
            import :: c_int, nm_node_perf_t
            integer(c_int), value :: node
            type(nm_node_perf_t), intent(out) :: out
            integer(c_int) :: nm_node_perf
        end function

        ! Regions (a region is a type(c_ptr); policy may be c_null_ptr for local)
        function nm_region_map(size, policy, prefault, flags) bind(c, name="nm_region_map")
            import :: c_ptr, c_size_t, c_int
            integer(c_size_t), value :: size
            type(c_ptr), value :: policy
            integer(c_int), value :: prefault, flags
            type(c_ptr) :: nm_region_map
        end function
        function nm_region_addr(r) bind(c, name="nm_region_addr")
            import :: c_ptr
            type(c_ptr), value :: r
            type(c_ptr) :: nm_region_addr
        end function
        function nm_region_size(r) bind(c, name="nm_region_size")
            import :: c_ptr, c_size_t
            type(c_ptr), value :: r
            integer(c_size_t) :: nm_region_size
        end function
        function nm_region_unmap(r) bind(c, name="nm_region_unmap")
            import :: c_ptr, c_int
            type(c_ptr), value :: r
            integer(c_int) :: nm_region_unmap
        end function
        function nm_region_migrate(r, policy) bind(c, name="nm_region_migrate")
            import :: c_ptr, c_int
            type(c_ptr), value :: r, policy
            integer(c_int) :: nm_region_migrate
        end function
        function nm_region_enforcement(r, out) bind(c, name="nm_region_enforcement")
            import :: c_ptr, c_int, nm_enforcement
            type(c_ptr), value :: r
            type(nm_enforcement), intent(out) :: out
            integer(c_int) :: nm_region_enforcement
        end function

        ! Statistics and the profiler
        subroutine nm_stats_get(out) bind(c, name="nm_stats_get")
            import :: nm_stats
            type(nm_stats), intent(out) :: out
        end subroutine
        subroutine nm_stats_print(fd) bind(c, name="nm_stats_print")
            import :: c_int
            integer(c_int), value :: fd
        end subroutine
        function nm_stats_json_c(buf, len) bind(c, name="nm_stats_json")
            import :: c_char, c_size_t
            character(kind=c_char), intent(out) :: buf(*)
            integer(c_size_t), value :: len
            integer(c_size_t) :: nm_stats_json_c
        end function
        ! path: a NUL-terminated C string or c_null_ptr
        function nm_prof_dump_c(path) bind(c, name="nm_prof_dump")
            import :: c_ptr, c_int
            type(c_ptr), value :: path
            integer(c_int) :: nm_prof_dump_c
        end function
        ! dev: a NUL-terminated C string
        function nm_node_of_device_c(dev) bind(c, name="nm_node_of_device")
            import :: c_char, c_int
            character(kind=c_char), intent(in) :: dev(*)
            integer(c_int) :: nm_node_of_device_c
        end function
        function nm_malloc_near_c(dev, size) bind(c, name="nm_malloc_near")
            import :: c_char, c_ptr, c_size_t
            character(kind=c_char), intent(in) :: dev(*)
            integer(c_size_t), value :: size
            type(c_ptr) :: nm_malloc_near_c
        end function
    end interface

    ! ---- generic names ------------------------------------------------------------------
    ! nm_free(c_ptr) is the C function; nm_free(array) frees an array from
    ! nm_alloc_on_node, nm_alloc_local or nm_alloc_heap.
    interface nm_free
        subroutine nm_free_c(ptr) bind(c, name="nm_free")
            import :: c_ptr
            type(c_ptr), value :: ptr
        end subroutine
        module procedure nm_free_r4, nm_free_r8, nm_free_i4, nm_free_i8
    end interface

    ! nm_where(ptr, len, counts, max_nodes) is the C function; nm_where(a, counts)
    ! counts the resident pages of the whole array a into counts(0:) (counts(id):
    ! pages on node id, for ids below size(counts); counts is not cleared).
    interface nm_where
        function nm_where_c(ptr, len, counts, max_nodes) bind(c, name="nm_where")
            import :: c_ptr, c_size_t, c_int64_t, c_int, c_long
            type(c_ptr), value :: ptr
            integer(c_size_t), value :: len
            integer(c_int64_t), intent(inout) :: counts(*)
            integer(c_int), value :: max_nodes
            integer(c_long) :: nm_where_c
        end function
        module procedure nm_where_r4, nm_where_r8, nm_where_i4, nm_where_i8
    end interface

    interface nm_alloc_on_node
        module procedure nm_alloc_on_node_r4, nm_alloc_on_node_r8, nm_alloc_on_node_i4, nm_alloc_on_node_i8
    end interface
    interface nm_alloc_local
        module procedure nm_alloc_local_r4, nm_alloc_local_r8, nm_alloc_local_i4, nm_alloc_local_i8
    end interface
    interface nm_alloc_heap
        module procedure nm_alloc_heap_r4, nm_alloc_heap_r8, nm_alloc_heap_i4, nm_alloc_heap_i8
    end interface

    private :: nm_free_r4, nm_free_r8, nm_free_i4, nm_free_i8
    private :: nm_where_r4, nm_where_r8, nm_where_i4, nm_where_i8
    private :: nm_alloc_on_node_r4, nm_alloc_on_node_r8, nm_alloc_on_node_i4, nm_alloc_on_node_i8
    private :: nm_alloc_local_r4, nm_alloc_local_r8, nm_alloc_local_i4, nm_alloc_local_i8
    private :: nm_alloc_heap_r4, nm_alloc_heap_r8, nm_alloc_heap_i4, nm_alloc_heap_i8
    private :: nm_align_size, nm_align_int
    private :: raw_block, count_of, is_integer, finish, c_string, fortran_string
    private :: attach_r4, attach_r8, attach_i4, attach_i8
    ! NM_ALIGN(a) for an alignment of either integer kind
    interface nm_align
        module procedure nm_align_size, nm_align_int
    end interface

contains

    ! errno as the last failed call of this thread left it.
    integer function nm_errno()
        interface
            ! errno is a thread-local int of the C library; this is where it is.
            function errno_location() bind(c, name="__errno_location")
                import :: c_ptr
                type(c_ptr) :: errno_location
            end function
        end interface
        integer(c_int), pointer :: e
        call c_f_pointer(errno_location(), e)
        nm_errno = e
    end function

    ! ---- allocation of Fortran arrays ----------------------------------------------------

    ! The memory for n elements of `elem` bytes from `how` (1: on node, 2:
    ! local, 3: heap): c_null_ptr with err 0 for n == 0 (nothing to
    ! allocate), with err set (errno) on failure.
    function raw_block(n, elem, how, node, heap, err) result(p)
        integer(c_int64_t), intent(in) :: n
        integer, intent(in) :: elem, how
        integer(c_int), intent(in) :: node
        type(c_ptr), intent(in) :: heap
        integer, intent(out) :: err
        type(c_ptr) :: p
        integer(c_size_t) :: bytes
        p = c_null_ptr
        err = 0
        if (n < 0) then
            err = 22   ! EINVAL
            return
        end if
        if (n == 0) return
        if (n > huge(n) / elem) then
            err = 12   ! ENOMEM: the size overflows
            return
        end if
        bytes = int(n, c_size_t) * int(elem, c_size_t)
        select case (how)
        case (1)
            p = nm_malloc_onnode(bytes, node)
        case (2)
            p = nm_malloc(bytes)
        case default
            p = nm_heap_malloc(heap, bytes)
        end select
        if (.not. c_associated(p)) err = nm_errno()
    end function

    ! An element count given as an integer of any kind; -1 (EINVAL) for
    ! anything else (is_integer tells the two apart).
    pure integer(c_int64_t) function count_of(n)
        class(*), intent(in) :: n
        select type (n)
        type is (integer(c_int8_t))
            count_of = n
        type is (integer(c_int16_t))
            count_of = n
        type is (integer(c_int32_t))
            count_of = n
        type is (integer(c_int64_t))
            count_of = n
        class default
            count_of = -1
        end select
    end function

    ! Whether n is an integer (of any kind), as an element count must be.
    pure logical function is_integer(n)
        class(*), intent(in) :: n
        select type (n)
        type is (integer(c_int8_t))
            is_integer = .true.
        type is (integer(c_int16_t))
            is_integer = .true.
        type is (integer(c_int32_t))
            is_integer = .true.
        type is (integer(c_int64_t))
            is_integer = .true.
        class default
            is_integer = .false.
        end select
    end function

    ! Report a failed allocation of n elements (n as the caller gave it):
    ! into stat when present, else stop with the reason.
    subroutine finish(err, what, n, node, stat)
        integer, intent(in) :: err
        character(len=*), intent(in) :: what
        class(*), intent(in) :: n
        integer(c_int), intent(in) :: node
        integer, intent(out), optional :: stat
        if (present(stat)) then
            stat = err
        else if (err /= 0) then
            if (.not. is_integer(n)) then
                write (error_unit, '(a, a)') what, ": n must be an integer"
            else if (node >= 0) then
                write (error_unit, '(a, a, i0, a, i0, a, i0)') what, ": cannot allocate ", count_of(n), &
                    " elements on node ", node, ": errno ", err
            else
                write (error_unit, '(a, a, i0, a, i0)') what, ": cannot allocate ", count_of(n), " elements: errno ", err
            end if
            error stop 1
        end if
    end subroutine

    ! ---- the array procedures, one set per element type (numamalloc_array.inc) ----

#define NM_T_ELEM real(c_float)
#define NM_T_ON_NODE nm_alloc_on_node_r4
#define NM_T_LOCAL nm_alloc_local_r4
#define NM_T_HEAP nm_alloc_heap_r4
#define NM_T_ATTACH attach_r4
#define NM_T_FREE nm_free_r4
#define NM_T_WHERE nm_where_r4
#include "numamalloc_array.inc"

#define NM_T_ELEM real(c_double)
#define NM_T_ON_NODE nm_alloc_on_node_r8
#define NM_T_LOCAL nm_alloc_local_r8
#define NM_T_HEAP nm_alloc_heap_r8
#define NM_T_ATTACH attach_r8
#define NM_T_FREE nm_free_r8
#define NM_T_WHERE nm_where_r8
#include "numamalloc_array.inc"

#define NM_T_ELEM integer(c_int32_t)
#define NM_T_ON_NODE nm_alloc_on_node_i4
#define NM_T_LOCAL nm_alloc_local_i4
#define NM_T_HEAP nm_alloc_heap_i4
#define NM_T_ATTACH attach_i4
#define NM_T_FREE nm_free_i4
#define NM_T_WHERE nm_where_i4
#include "numamalloc_array.inc"

#define NM_T_ELEM integer(c_int64_t)
#define NM_T_ON_NODE nm_alloc_on_node_i8
#define NM_T_LOCAL nm_alloc_local_i8
#define NM_T_HEAP nm_alloc_heap_i8
#define NM_T_ATTACH attach_i8
#define NM_T_FREE nm_free_i8
#define NM_T_WHERE nm_where_i8
#include "numamalloc_array.inc"

    ! ---- strings ----

    ! `s` without trailing blanks, NUL-terminated, for C.
    pure function c_string(s) result(c)
        character(len=*), intent(in) :: s
        character(kind=c_char, len=len_trim(s) + 1) :: c
        c = trim(s) // c_null_char
    end function

    ! The text of a C buffer up to its NUL.
    pure function fortran_string(buf) result(s)
        character(kind=c_char), intent(in) :: buf(:)
        character(len=:), allocatable :: s
        integer :: i, n
        n = size(buf)
        do i = 1, size(buf)
            if (buf(i) == c_null_char) then
                n = i - 1
                exit
            end if
        end do
        allocate (character(len=n) :: s)
        do i = 1, n
            s(i:i) = buf(i)
        end do
    end function

    ! Parse a policy ("bind:0", "interleave:all" ...; see nm_policy_parse in
    ! numamalloc.h).  Returns 0, or -1 with the one-line reason in err (when
    ! given; blank on success).
    function nm_policy_parse(text, p, err) result(rc)
        character(len=*), intent(in) :: text
        type(nm_policy), intent(out) :: p
        character(len=*), intent(out), optional :: err
        integer(c_int) :: rc
        character(kind=c_char) :: buf(256)
        buf = c_null_char
        rc = nm_policy_parse_c(c_string(text), p, buf, int(size(buf), c_size_t))
        if (present(err)) err = fortran_string(buf)
    end function

    ! The policy as text that nm_policy_parse reads back ("interleave:0-3").
    function nm_policy_format(p) result(text)
        type(nm_policy), intent(in) :: p
        character(len=:), allocatable :: text
        character(kind=c_char), allocatable :: buf(:)
        integer(c_int) :: n
        character(kind=c_char) :: probe(1)
        n = nm_policy_format_c(p, probe, 1_c_size_t)
        allocate (buf(n + 1))
        n = nm_policy_format_c(p, buf, int(size(buf), c_size_t))
        text = fortran_string(buf)
    end function

    ! C's NM_ALIGN(a): the flag for alignment a (a power of two up to 1 GiB),
    ! else NM_FLAGS_INVALID, which makes nm_mallocx fail with EINVAL;
    ! `a` of any integer kind (generic nm_align).
    elemental function nm_align_size(a) result(flag)
        integer(c_size_t), intent(in) :: a
        integer(c_int) :: flag
        flag = NM_FLAGS_INVALID
        if (a > 0 .and. iand(a, a - 1) == 0 .and. a <= ishft(1_c_size_t, NM_ALIGN_LG_MAX)) &
            flag = int(trailz(a), c_int)
    end function

    elemental function nm_align_int(a) result(flag)
        integer(c_int), intent(in) :: a
        integer(c_int) :: flag
        flag = nm_align_size(int(a, c_size_t))
    end function

    ! C's NM_NODE(n): the flags for kernel node id n (0 .. NM_NODE_ID_LIMIT-1).
    elemental function nm_node(n) result(flag)
        integer(c_int), intent(in) :: n
        integer(c_int) :: flag
        flag = NM_FLAGS_INVALID
        if (n >= 0 .and. n < NM_NODE_ID_LIMIT) flag = ior(NM_NODE_GIVEN, ishft(n, NM_NODE_SHIFT))
    end function

    ! The statistics as one JSON object (without the trailing newline).
    function nm_stats_json() result(text)
        character(len=:), allocatable :: text
        character(kind=c_char), allocatable :: buf(:)
        integer(c_size_t) :: n
        n = 65536
        do
            allocate (buf(n))
            n = nm_stats_json_c(buf, int(size(buf), c_size_t))
            if (n < size(buf, kind=c_size_t)) exit
            n = n + 4096   ! it grew between the calls: room for more
            deallocate (buf)
        end do
        text = fortran_string(buf)
        if (len(text) > 0) then
            if (text(len(text):) == achar(10)) text = text(:len(text) - 1)
        end if
    end function

    ! Write a heap profile to `path`, or without it to NUMAMALLOC_PROF_FILE's
    ! place.  Returns 0, or -1 (nm_errno(): EINVAL when the profiler is off).
    function nm_prof_dump(path) result(rc)
        character(len=*), intent(in), optional :: path
        integer(c_int) :: rc
        character(kind=c_char, len=:), allocatable, target :: c
        if (present(path)) then
            c = c_string(path)
            rc = nm_prof_dump_c(c_loc(c))
        else
            rc = nm_prof_dump_c(c_null_ptr)
        end if
    end function

    function nm_node_of_device(dev) result(node)
        character(len=*), intent(in) :: dev
        integer(c_int) :: node
        node = nm_node_of_device_c(c_string(dev))
    end function

    function nm_malloc_near(dev, size) result(p)
        character(len=*), intent(in) :: dev
        integer(c_size_t), intent(in) :: size
        type(c_ptr) :: p
        p = nm_malloc_near_c(c_string(dev), size)
    end function

end module numamalloc
