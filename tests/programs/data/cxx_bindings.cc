// cxx_bindings.cc — include/numamalloc.hpp: numamalloc::allocator with
// std::vector and std::map, numamalloc::memory_resource with std::pmr
// containers, numamalloc::heap, for each binding (local, a node, a heap, a
// policy).  Each block is checked to come from numamalloc (nm_usable_size
// covers it), to carry the memory policy the binding means (the kernel's
// get_mempolicy of its page: bind for a node, the heap's policy for a
// heap) and to have its pages on the intended node (nm_where).  Then
// equality, rebind, over-aligned types, propagation, and the errors
// (std::bad_alloc, std::system_error, std::invalid_argument); the
// new-handler run on a heap's limit; scoped_thread_heap refused by
// nm_thread_set_heap (ENOMEM under RLIMIT_AS, first thing in main while no
// spare heap struct exists); heap::migrate's report when pages did not
// move (nm_heap_migrate's EIO, simulated by the wrapper below: one node
// cannot be made to refuse a page).  Prints one
// line per group and "cxx bindings: N checks, 0 failed"; exit 1 on a failure.
// Built and run by tests/programs/cxx_bindings.sh, linked with -lnumamalloc.
#include <numamalloc.hpp>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory_resource>
#include <string>
#include <system_error>
#include <vector>

static int checks, failures;
#define CHECK(cond)                                                                            \
    do {                                                                                       \
        checks++;                                                                              \
        if (!(cond)) {                                                                         \
            failures++;                                                                        \
            std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
        }                                                                                      \
    } while (0)

enum { MPOL_DEFAULT_ = 0, MPOL_PREFERRED_ = 1, MPOL_BIND_ = 2, MPOL_INTERLEAVE_ = 3 };

// The kernel's policy mode for the page of `p`, and its node mask's first word.
static int policy_of(const void *p, unsigned long *mask0)
{
    unsigned long mask[NM_NODE_ID_LIMIT / 64] = {0};
    int mode = -1;
    if (syscall(SYS_get_mempolicy, &mode, mask, (unsigned long)NM_NODE_ID_LIMIT + 1, p, 2 /* MPOL_F_ADDR */) != 0)
        return -1;
    *mask0 = mask[0];
    return mode;
}

// Pages of [p, p + bytes) resident on `node` and in all.
static bool all_pages_on(const void *p, size_t bytes, int node)
{
    static uint64_t counts[NM_NODE_ID_LIMIT];
    std::memset(counts, 0, sizeof counts);
    long resident = nm_where(p, bytes, counts, NM_NODE_ID_LIMIT);
    return resident > 0 && (long)counts[node] == resident;
}

// A block is numamalloc's, covers `bytes`, and sits under mode `mode` with
// node `node` in its mask (mode -1: any mode but bind and interleave).
static void check_block(const char *what, const void *p, size_t bytes, int mode, int node)
{
    unsigned long mask0 = 0;
    int got = policy_of(p, &mask0);
    bool usable = nm_usable_size(p) >= bytes;
    bool mode_ok = mode < 0 ? (got != MPOL_BIND_ && got != MPOL_INTERLEAVE_) : got == mode;
    bool mask_ok = mode < 0 || (mask0 & (1ul << node));
    bool placed = all_pages_on(p, bytes, node);
    std::printf("%-34s %p usable %zu policy %d mask %#lx pages on node %d: %s\n", what, p, nm_usable_size(p), got,
                mask0, node, usable && mode_ok && mask_ok && placed ? "ok" : "WRONG");
    CHECK(usable);
    CHECK(mode_ok);
    CHECK(mask_ok);
    CHECK(placed);
}

// nm_heap_migrate as the library has it, except that while fake_eio is set
// it reports 2 of 3 pages not moved (busy) and returns -1 with errno EIO,
// as the library does when the kernel leaves pages where they are.
static bool fake_eio;
extern "C" int nm_heap_migrate(nm_heap_t *heap, const nm_policy *policy, struct nm_migrate_report *report)
{
    using fn = int (*)(nm_heap_t *, const nm_policy *, struct nm_migrate_report *);
    static fn real = reinterpret_cast<fn>(dlsym(RTLD_NEXT, "nm_heap_migrate"));
    int rc = real(heap, policy, report);
    if (rc != 0 || !fake_eio) return rc;
    report->asked = 3;
    report->moved = 1;
    report->not_moved = report->busy = 2;
    report->last_error = EBUSY;
    errno = EIO;
    return -1;
}

// The process's address space now (VmSize), read without allocating.
static long address_space_bytes()
{
    char buf[128] = {0};
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0) return -1;
    long n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? std::atol(buf) * sysconf(_SC_PAGESIZE) : -1;
}

// A scoped_thread_heap that nm_thread_set_heap refuses (ENOMEM: the
// address space is capped at what the process holds, and a heap new to the
// thread needs a heap struct mapped) throws std::bad_alloc and leaves the
// outer scope's heap set.  Run before anything else: later, spare heap
// structs exist and the set needs no new memory.
static void check_refused_scope()
{
    numamalloc::heap outer, inner;
    bool thrown = false, outer_kept = false;
    {
        numamalloc::scoped_thread_heap in_outer(outer);
        std::free(std::malloc(64));   // outer's segment is mapped before the cap
        struct rlimit old, capped;
        getrlimit(RLIMIT_AS, &old);
        capped = old;
        capped.rlim_cur = address_space_bytes();
        setrlimit(RLIMIT_AS, &capped);
        try {
            numamalloc::scoped_thread_heap in_inner(inner);
        } catch (const std::bad_alloc &) {
            thrown = true;
        }
        setrlimit(RLIMIT_AS, &old);
        void *p = std::malloc(64);
        struct nm_ptr_info info;
        outer_kept = p && nm_ptr_info(p, &info) == 0 && info.heap == outer.get();
        std::free(p);
    }
    std::printf("scoped_thread_heap refused: %s, outer heap %s\n", thrown ? "bad_alloc" : "not thrown",
                outer_kept ? "kept" : "LOST");
    CHECK(thrown);
    CHECK(outer_kept);
}

static int handler_calls;
static numamalloc::heap *handler_heap;
// A new-handler that makes room: the heap's limit goes up to 16 MiB.
static void raise_limit()
{
    handler_calls++;
    handler_heap->set_limit(std::size_t(16) << 20);
}
// A new-handler that gives up on its second call.
static void give_up()
{
    if (++handler_calls == 2) std::set_new_handler(nullptr);
}

struct alignas(256) wide {
    double v[4];
};

int main()
{
    using numamalloc::allocator;
    using numamalloc::on_node;
    std::printf("cxx bindings\n");   // stdout's buffer before any heap scope
    check_refused_scope();
    int ids[NM_NODE_ID_LIMIT];
    nm_node_ids(ids, NM_NODE_ID_LIMIT);
    int node = ids[0];   // NM_NODE env: another node (the 2-node guest)
    if (const char *e = std::getenv("NM_NODE")) node = std::atoi(e);
    std::printf("node %d of %d\n", node, nm_node_count());
    std::string pol = "bind:" + std::to_string(node);

    // ---- std::vector with each binding
    {
        std::vector<double, allocator<double>> local(100000, 1.0);
        check_block("vector, local", local.data(), local.size() * sizeof(double), -1, nm_current_node());
        std::vector<double, allocator<double>> bound(100000, 2.0, allocator<double>(on_node{node}));
        check_block("vector, on_node", bound.data(), bound.size() * sizeof(double), MPOL_BIND_, node);
        std::vector<int, allocator<int>> small(10, 3, allocator<int>(on_node{node}));
        check_block("small vector, on_node", small.data(), small.size() * sizeof(int), MPOL_BIND_, node);

        numamalloc::heap h(numamalloc::parse_policy(("interleave:" + std::to_string(node)).c_str()));
        std::vector<double, allocator<double>> in_heap(100000, 3.0, allocator<double>(h));
        check_block("vector, heap interleave", in_heap.data(), in_heap.size() * sizeof(double), MPOL_INTERLEAVE_, node);

        allocator<double> by_policy(numamalloc::parse_policy(pol.c_str()));
        std::vector<double, allocator<double>> pv(100000, 4.0, by_policy);
        check_block("vector, policy bind", pv.data(), pv.size() * sizeof(double), MPOL_BIND_, node);
        CHECK(pv.get_allocator().get_binding().heap_handle() == by_policy.get_binding().heap_handle());
        nm_policy hp = nm_heap_policy(by_policy.get_binding().heap_handle());
        CHECK(hp.mode == NM_POLICY_BIND && nm_nodeset_has(&hp.nodes, node));

        // Over-aligned elements: aligned, and still bound to the node.
        std::vector<wide, allocator<wide>> w(1000, wide{}, allocator<wide>(on_node{node}));
        CHECK(reinterpret_cast<uintptr_t>(w.data()) % 256 == 0);
        check_block("vector<alignas(256)>, on_node", w.data(), w.size() * sizeof(wide), MPOL_BIND_, node);
        std::vector<wide, allocator<wide>> wl(3);
        CHECK(reinterpret_cast<uintptr_t>(wl.data()) % 256 == 0);
    }

    // ---- std::map: its nodes through the rebound allocator
    {
        using pair_alloc = allocator<std::pair<const int, long>>;
        std::map<int, long, std::less<int>, pair_alloc> m{pair_alloc(on_node{node})};
        for (int i = 0; i < 1000; i++) m[i] = i;
        int wrong = 0;
        for (auto &kv : m) {
            unsigned long mask0 = 0;
            // (&kv is inside the tree node: the policy of its page, not nm_usable_size)
            if (policy_of(&kv, &mask0) != MPOL_BIND_ || !(mask0 & (1ul << node)) || !all_pages_on(&kv, sizeof kv, node))
                wrong++;
        }
        std::printf("map, on_node: 1000 nodes, %d not bound to node %d\n", wrong, node);
        CHECK(wrong == 0);
        numamalloc::heap h(numamalloc::parse_policy(pol.c_str()));
        std::map<int, long, std::less<int>, pair_alloc> mh{pair_alloc(h)};
        mh[1] = 1;
        unsigned long mask0 = 0;
        CHECK(policy_of(&*mh.begin(), &mask0) == MPOL_BIND_ && (mask0 & (1ul << node)));
    }

    // ---- equality and rebind
    {
        numamalloc::heap h1, h2;
        allocator<int> a0(on_node{node}), b0(on_node{node}), l1, l2, x1(h1), y1(h1), x2(h2);
        allocator<double> d0(a0);   // rebind keeps the binding
        allocator<int>::rebind<char>::other c0(a0);
        CHECK(a0 == b0 && l1 == l2 && x1 == y1);
        CHECK(a0 != l1 && x1 != x2 && a0 != x1);
        CHECK(d0 == a0 && c0 == a0 && d0.get_binding().node() == node);
        nm_policy p = numamalloc::parse_policy(pol.c_str());
        allocator<int> p1(p), p2(p), p1copy(p1);
        CHECK(p1 != p2 && p1 == p1copy);   // each policy allocator has a heap of its own
        CHECK(std::allocator_traits<allocator<int>>::propagate_on_container_swap::value);
        // Swap carries the allocators with the storage.
        std::vector<int, allocator<int>> va(10, 1, a0), vb(10, 2, x1);
        int *da = va.data();
        va.swap(vb);
        CHECK(vb.data() == da && vb.get_allocator() == a0 && va.get_allocator() == x1);
        std::printf("equality and rebind: checked\n");
    }

    // ---- a heap's controls, and steering code we did not write into a heap
    {
        numamalloc::heap h;
        std::vector<int> *v;
        struct nm_ptr_info info;
        {
            numamalloc::scoped_thread_heap in(h);
            v = new std::vector<int>(1000, 3);   // plain new: from the heap
        }
        CHECK(nm_ptr_info(v->data(), &info) == 0 && info.heap == h.get());
        CHECK(nm_ptr_info(v, &info) == 0 && info.heap == h.get());
        void *after = std::malloc(64);            // the scope is over: not from it
        CHECK(nm_ptr_info(after, &info) == 0 && info.heap == nullptr);
        std::free(after);
        CHECK(h.stats().blocks >= 2);
        h.clear();                                 // v and its storage are gone
        CHECK(h.stats().blocks == 0);
        numamalloc::heap capped;                   // a fresh heap: h keeps its segment
        capped.set_limit(std::size_t(8) << 20);
        allocator<char> in_h(capped);
        char *big = in_h.allocate(std::size_t(6) << 20);
        int thrown = 0;
        try {
            in_h.allocate(std::size_t(6) << 20);
        } catch (const std::bad_alloc &) {
            thrown++;
        }
        CHECK(thrown == 1);
        in_h.deallocate(big, std::size_t(6) << 20);
        struct nm_migrate_report r = capped.migrate(numamalloc::parse_policy(pol.c_str()));
        CHECK(r.not_moved == 0);
        // Pages left where they were: the report comes back, nothing thrown.
        fake_eio = true;
        bool threw = false;
        try {
            r = capped.migrate(numamalloc::parse_policy(pol.c_str()));
        } catch (const std::system_error &) {
            threw = true;
        }
        fake_eio = false;
        std::printf("migrate with pages not moved: %s, not_moved %llu\n", threw ? "threw" : "report",
                    (unsigned long long)r.not_moved);
        CHECK(!threw && r.not_moved == 2 && r.busy == 2 && r.last_error == EBUSY);
        std::printf("heap controls and scoped_thread_heap: checked\n");
    }

    // ---- the new-handler, when memory is short (a heap's limit)
    {
        numamalloc::heap capped;
        capped.set_limit(std::size_t(8) << 20);
        allocator<char> in_h(capped);
        numamalloc::memory_resource res{capped};
        char *first = in_h.allocate(std::size_t(6) << 20);
        handler_heap = &capped;
        handler_calls = 0;
        std::new_handler before = std::set_new_handler(raise_limit);
        char *second = nullptr;
        try {
            second = in_h.allocate(std::size_t(6) << 20);   // the handler makes room
        } catch (const std::bad_alloc &) {
        }
        CHECK(second != nullptr && handler_calls == 1);
        int raised = handler_calls;
        // At the limit again: the handler runs until it gives up.
        handler_calls = 0;
        std::set_new_handler(give_up);
        int thrown = 0;
        try {
            res.deallocate(res.allocate(std::size_t(6) << 20), std::size_t(6) << 20);
        } catch (const std::bad_alloc &) {
            thrown++;
        }
        CHECK(thrown == 1 && handler_calls == 2);
        int gave_up = handler_calls;
        // A node that does not exist (EINVAL): no handler, at once.
        handler_calls = 0;
        std::set_new_handler(give_up);
        try {
            allocator<int>(on_node{NM_NODE_ID_LIMIT + 3}).allocate(10);
        } catch (const std::bad_alloc &) {
            thrown++;
        }
        CHECK(thrown == 2 && handler_calls == 0);
        std::set_new_handler(before);
        std::printf("new-handler: %d call made room, %d calls then bad_alloc, %d for a bad node\n", raised,
                    gave_up, handler_calls);
        if (second) in_h.deallocate(second, std::size_t(6) << 20);
        in_h.deallocate(first, std::size_t(6) << 20);
    }

    // ---- std::pmr
    {
        numamalloc::memory_resource on{on_node{node}}, on2{on_node{node}}, local;
        numamalloc::heap h(numamalloc::parse_policy(("interleave:" + std::to_string(node)).c_str()));
        numamalloc::memory_resource in_heap{h};
        numamalloc::memory_resource by_policy{numamalloc::parse_policy(pol.c_str())};

        std::pmr::vector<double> v(100000, 5.0, &on);
        check_block("pmr::vector, on_node", v.data(), v.size() * sizeof(double), MPOL_BIND_, node);
        std::pmr::vector<double> vh(100000, 6.0, &in_heap);
        check_block("pmr::vector, heap interleave", vh.data(), vh.size() * sizeof(double), MPOL_INTERLEAVE_, node);
        std::pmr::vector<double> vp(100000, 7.0, &by_policy);
        check_block("pmr::vector, policy bind", vp.data(), vp.size() * sizeof(double), MPOL_BIND_, node);
        std::pmr::vector<double> vl(100000, 8.0, &local);
        check_block("pmr::vector, local", vl.data(), vl.size() * sizeof(double), -1, nm_current_node());
        // Alignment through do_allocate.
        void *a = on.allocate(1000, 4096);
        CHECK(reinterpret_cast<uintptr_t>(a) % 4096 == 0);
        std::memset(a, 1, 1000);
        check_block("pmr allocate(1000, 4096), on_node", a, 1000, MPOL_BIND_, node);
        on.deallocate(a, 1000, 4096);
        // A pool on top: its chunks come from the node.
        std::pmr::unsynchronized_pool_resource pool{&on};
        std::pmr::vector<int> pv(50000, 1, &pool);
        check_block("pmr pool over on_node", pv.data(), pv.size() * sizeof(int), MPOL_BIND_, node);
        CHECK(on.is_equal(on2) && !on.is_equal(local) && !on.is_equal(in_heap));
        CHECK(!on.is_equal(*std::pmr::new_delete_resource()));
    }

    // ---- numamalloc::heap
    {
        numamalloc::heap a(numamalloc::parse_policy(pol.c_str()));
        nm_heap_t *raw = a.get();
        numamalloc::heap b(std::move(a));
        CHECK(!a && b.get() == raw);
        numamalloc::heap c;
        c = std::move(b);
        CHECK(!b && c.get() == raw);
        CHECK(c.policy().mode == NM_POLICY_BIND);
        static_assert(!std::is_copy_constructible_v<numamalloc::heap>, "heap is not copyable");
        static_assert(std::is_nothrow_move_constructible_v<numamalloc::heap>, "heap moves");
        std::printf("heap: moved twice, owns %p\n", static_cast<void *>(raw));
    }

    // ---- errors
    {
        int caught = 0;
        try {
            allocator<int> bad(on_node{NM_NODE_ID_LIMIT + 3});
            std::vector<int, allocator<int>> v(10, 0, bad);
        } catch (const std::bad_alloc &) {
            caught++;
        }
        try {
            allocator<char> a(on_node{node});
            a.allocate(std::size_t(1) << 62);    // more than any machine has
        } catch (const std::bad_alloc &) {
            caught++;
        }
        try {
            allocator<double> a;
            a.allocate(std::size_t(-1) / 4);     // n * sizeof overflows
        } catch (const std::bad_array_new_length &) {
            caught++;
        }
        try {
            nm_nodeset set;
            nm_nodeset_clear(&set);
            nm_nodeset_add(&set, NM_NODE_ID_LIMIT - 1);
            numamalloc::heap h(nm_policy_bind(&set));
        } catch (const std::system_error &e) {
            if (e.code() == std::errc::invalid_argument) caught++;
        }
        try {
            numamalloc::parse_policy("bind:999");
        } catch (const std::invalid_argument &e) {
            if (std::strstr(e.what(), "999")) caught++;
        }
        std::printf("errors: %d of 5 thrown as expected\n", caught);
        CHECK(caught == 5);
    }

    std::printf("cxx bindings: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
