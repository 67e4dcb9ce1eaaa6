! fortran_onnode.f90 — Fortran arrays placed on NUMA nodes with the
! numamalloc module: one array bound to each node with memory, then one per
! OpenMP thread on the node the thread runs on; each is filled, and the
! kernel is asked where its pages are (nm_where).  Exits 1 when a page is
! elsewhere or a sum is wrong.
!
!   gfortran -O2 -fopenmp -I build/fortran examples/fortran_onnode.f90 -o fortran_onnode \
!       build/libnumamalloc_fortran.a -L build -lnumamalloc -Wl,-rpath,$PWD/build
!   OMP_NUM_THREADS=4 ./fortran_onnode
program fortran_onnode
    use numamalloc
    !$ use omp_lib
    implicit none
    integer, parameter :: n = 1048576            ! 8 MiB of real(8): 2048 pages
    integer(c_int) :: ids(NM_NODE_ID_LIMIT), count, k, node
    integer(c_int64_t) :: total, free_bytes
    integer :: bad = 0

    ! One array on every node with memory.
    count = nm_node_ids(ids, size(ids))
    do k = 1, min(count, size(ids))
        node = ids(k)
        if (nm_node_memory(node, total, free_bytes) /= 0 .or. total == 0) cycle
        call one_array("node", node, node)
    end do

    ! One array per thread, on the node it runs on.
    !$omp parallel private(node) reduction(+:bad)
    node = nm_current_node()
    call one_array("thread", thread_number(), node)
    !$omp end parallel

    if (bad /= 0) then
        write (*, '(i0, a)') bad, " array(s) not wholly on their node or summed wrong"
        stop 1
    end if
    write (*, '(a)') "every array on its node: ok"

contains

    integer function thread_number()
        thread_number = 0
        !$ thread_number = omp_get_thread_num()
    end function

    ! Allocate n real(8) on `node`, fill, locate, sum; print one line.
    subroutine one_array(who, id, node)
        character(len=*), intent(in) :: who
        integer, intent(in) :: id
        integer(c_int), intent(in) :: node
        real(8), pointer :: a(:)
        integer(c_int64_t) :: counts(0:NM_NODE_ID_LIMIT - 1)
        integer(c_long) :: pages
        integer :: i
        logical :: ok

        call nm_alloc_on_node(a, n, node)
        do i = 1, n
            a(i) = i                              ! first touch: the pages are placed now
        end do
        counts = 0
        pages = nm_where(a, counts)
        ok = pages == n / 512 .and. counts(node) == pages .and. nint(sum(a), 8) == int(n, 8) * (n + 1) / 2
        write (*, '(a, 1x, i0, a, i0, a, i0, a, i0, a, i0, a, i0, 1x, a)') who, id, ": node ", node, ": ", &
            counts(node), "/", pages, " pages on node ", node, ", sum ", nint(sum(a), 8), &
            trim(merge("ok   ", "WRONG", ok))
        if (.not. ok) bad = bad + 1
        call nm_free(a)
    end subroutine
end program
