/*
 * numamalloc.hpp — C++17 interface to numamalloc (include/numamalloc.h):
 * standard allocators and a polymorphic memory resource that place memory
 * on a node, in a heap or by a policy, and an owning heap.
 *
 *   numamalloc::allocator<double> on1{numamalloc::on_node{1}};
 *   std::vector<double, numamalloc::allocator<double>> v(n, 0.0, on1);
 *
 *   numamalloc::heap shared{numamalloc::parse_policy("interleave:all")};
 *   numamalloc::memory_resource res{shared};
 *   std::pmr::vector<int> w(&res);
 *
 * A binding says where blocks come from:
 *   local (default)    nm_malloc: the node of the thread that allocates
 *                      (inside a scoped_thread_heap, that heap's policy:
 *                      nm_malloc comes from the thread's heap)
 *   on_node{n}         nm_malloc_onnode(size, n): bound to node n
 *   a heap             nm_heap_malloc: the heap's policy (the heap must
 *                      outlive every container using it; a temporary
 *                      numamalloc::heap is refused at compile time)
 *   an nm_policy       a heap of its own made with nm_heap_new, shared by
 *                      every copy of the allocator and destroyed with the
 *                      last of them (explicit: binding{policy})
 * Over-aligned requests (alignment above 16) use nm_aligned_alloc,
 * nm_heap_aligned_alloc, or for a node nm_mallocx with NM_NODE and
 * NM_ALIGN (placed as nm_malloc_onnode places).  Every block is freed with
 * nm_free.  Two allocators (or resources) are equal when their bindings
 * are: same kind and same node, or same heap.  An allocation that fails
 * for want of memory (ENOMEM: the machine's, a node's, a heap's limit)
 * calls the new-handler (std::set_new_handler) and tries again while there
 * is one, as operator new does, then throws std::bad_alloc; a node that
 * does not exist or whose memory the process may not use throws
 * std::bad_alloc at once; a heap that cannot be made throws
 * std::system_error with errno (EINVAL, ENOSYS) or std::bad_alloc (ENOMEM);
 * parse_policy throws std::invalid_argument with nm_policy_parse's reason.
 *
 * Containers: move assignment and swap carry the allocator along with the
 * storage (the blocks stay where they were placed, and swapping containers
 * of different bindings is defined); copy assignment keeps the target's
 * binding (the copied elements go where the target's memory goes).
 */
#ifndef NUMAMALLOC_HPP
#define NUMAMALLOC_HPP

#include <numamalloc.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#if __has_include(<memory_resource>)
#include <memory_resource>
#define NUMAMALLOC_HPP_PMR 1
#endif

namespace numamalloc {

/* A node to bind to: allocator<T>{on_node{1}}. */
struct on_node {
    int id;
};

/* Parse a policy as nm_policy_parse does ("bind:0", "interleave:all" ...). */
inline nm_policy parse_policy(const char *text)
{
    nm_policy p;
    char err[256];
    if (nm_policy_parse(text, &p, err, sizeof err) != 0) throw std::invalid_argument(err);
    return p;
}

/* An owning nm_heap_t: destroyed (with every block in it) by the
 * destructor; movable, not copyable. */
class heap {
public:
    explicit heap(const nm_policy &policy, unsigned flags = 0) : h_(nm_heap_new_flags(&policy, flags))
    {
        if (!h_) fail();
    }
    heap() : h_(nm_heap_new(nullptr))   /* the local policy */
    {
        if (!h_) fail();
    }
    /* Take ownership of a heap made with nm_heap_new. */
    explicit heap(nm_heap_t *h) noexcept : h_(h) {}
    heap(const heap &) = delete;
    heap &operator=(const heap &) = delete;
    heap(heap &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    heap &operator=(heap &&o) noexcept
    {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    ~heap() { reset(); }

    nm_heap_t *get() const noexcept { return h_; }
    explicit operator bool() const noexcept { return h_ != nullptr; }
    /* Give up ownership: the caller destroys it. */
    nm_heap_t *release() noexcept { return std::exchange(h_, nullptr); }
    /* Destroy the heap now (every block in it goes too). */
    void reset() noexcept
    {
        if (h_) nm_heap_destroy(std::exchange(h_, nullptr));
    }
    nm_policy policy() const noexcept { return nm_heap_policy(h_); }
    /* Free every block of the heap at once; the heap stays (nm_heap_reset;
     * std::system_error with EBUSY while a thread has it set). */
    void clear() const { check(nm_heap_reset(h_), "nm_heap_reset"); }
    /* Cap its memory (nm_heap_set_limit; 0: none): allocations past it
     * throw std::bad_alloc. */
    void set_limit(std::size_t bytes) const { check(nm_heap_set_limit(h_, bytes), "nm_heap_set_limit"); }
    struct nm_heap_stats stats() const
    {
        struct nm_heap_stats out;
        check(nm_heap_stats(h_, &out), "nm_heap_stats");
        return out;
    }
    /* Move its pages and its future blocks to `to` (nm_heap_migrate; no
     * other thread may use the heap meanwhile).  Pages that could not
     * move are counted in the report (not_moved and why; the new policy
     * is in effect all the same), which is returned: check not_moved.
     * A policy that cannot be set throws std::system_error (EINVAL,
     * ENOSYS) with nothing changed. */
    struct nm_migrate_report migrate(const nm_policy &to) const
    {
        struct nm_migrate_report report;
        if (nm_heap_migrate(h_, &to, &report) != 0 && errno != EIO)
            throw std::system_error(errno, std::generic_category(), "nm_heap_migrate");
        return report;
    }

private:
    [[noreturn]] static void fail()
    {
        if (errno == ENOMEM) throw std::bad_alloc();
        throw std::system_error(errno, std::generic_category(), "nm_heap_new");
    }
    static void check(int rc, const char *what)
    {
        if (rc != 0) throw std::system_error(errno, std::generic_category(), what);
    }
    nm_heap_t *h_;
};

/* While it lives, the calling thread's plain allocations (malloc, new, the
 * containers of code the program does not control) come from a heap
 * (nm_thread_set_heap); the heap set before comes back when it goes.
 * What the C and C++ runtimes allocate meanwhile (a stream's buffer, a
 * thread's storage) comes from the heap too: keep such things out of the
 * scope of a heap that is cleared or destroyed before them.  When the heap
 * cannot be set (ENOMEM: no memory for the thread's part of it) the
 * constructor throws std::bad_alloc and the heap set before stays.  The
 * heap must outlive the scope: a temporary numamalloc::heap is refused at
 * compile time. */
class scoped_thread_heap {
public:
    explicit scoped_thread_heap(nm_heap_t *h) : previous_(set(h)) {}
    explicit scoped_thread_heap(const heap &h) : scoped_thread_heap(h.get()) {}
    explicit scoped_thread_heap(heap &&) = delete;
    scoped_thread_heap(const scoped_thread_heap &) = delete;
    scoped_thread_heap &operator=(const scoped_thread_heap &) = delete;
    ~scoped_thread_heap() { nm_thread_set_heap(previous_); }

private:
    /* nm_thread_set_heap: NULL with errno 0 is "none before", with errno
     * set a failure that left the earlier heap in place. */
    static nm_heap_t *set(nm_heap_t *h)
    {
        errno = 0;
        nm_heap_t *previous = nm_thread_set_heap(h);
        if (!previous && errno != 0) throw std::bad_alloc();
        return previous;
    }
    nm_heap_t *previous_;
};

/* Where blocks come from (see the top of this file); a small value,
 * copied into every allocator and resource. */
class binding {
public:
    enum class kind { local, node, heap };

    binding() noexcept = default;
    binding(on_node n) noexcept : kind_(kind::node), node_(n.id) {}
    /* A heap the caller keeps alive (nm_heap_t or numamalloc::heap). */
    binding(nm_heap_t *h) noexcept : kind_(kind::heap), heap_(std::shared_ptr<nm_heap_t>(), h) {}
    binding(const numamalloc::heap &h) noexcept : binding(h.get()) {}
    binding(numamalloc::heap &&) = delete;   /* would dangle */
    /* A heap of its own for `policy`, shared by the copies. */
    explicit binding(const nm_policy &policy)
        : kind_(kind::heap), heap_(numamalloc::heap(policy).release(), nm_heap_destroy) {}

    kind which() const noexcept { return kind_; }
    int node() const noexcept { return kind_ == kind::node ? node_ : -1; }
    nm_heap_t *heap_handle() const noexcept { return heap_.get(); }

    /* `bytes` aligned to `alignment` (a power of two); when memory is
     * short (ENOMEM) the new-handler runs and the allocation is tried
     * again while there is one, as in operator new; throws std::bad_alloc
     * when that cannot be had. */
    void *allocate(std::size_t bytes, std::size_t alignment = alignof(std::max_align_t)) const
    {
        for (;;) {
            errno = 0;
            if (void *p = try_allocate(bytes, alignment)) return p;
            std::new_handler handler = errno == ENOMEM ? std::get_new_handler() : nullptr;
            if (!handler) throw std::bad_alloc();
            handler();
        }
    }
    static void deallocate(void *p) noexcept { nm_free(p); }

    friend bool operator==(const binding &a, const binding &b) noexcept
    {
        return a.kind_ == b.kind_ && a.node_ == b.node_ && a.heap_.get() == b.heap_.get();
    }
    friend bool operator!=(const binding &a, const binding &b) noexcept { return !(a == b); }

private:
    /* One try: the block, or NULL with errno. */
    void *try_allocate(std::size_t bytes, std::size_t alignment) const noexcept
    {
        bool plain = alignment <= 16;
        void *p = nullptr;
        switch (kind_) {
        case kind::local:
            p = plain ? nm_malloc(bytes) : nm_aligned_alloc(alignment, bytes);
            break;
        case kind::node:
            /* Aligned or not, placed as nm_malloc_onnode places. */
            p = plain ? nm_malloc_onnode(bytes, node_)
                      : nm_mallocx(bytes, NM_ALIGN(alignment) | NM_NODE(node_));
            break;
        case kind::heap:
            p = plain ? nm_heap_malloc(heap_.get(), bytes)
                      : nm_heap_aligned_alloc(heap_.get(), alignment, bytes);
            break;
        }
        return p;
    }

    kind kind_ = kind::local;
    int node_ = -1;
    std::shared_ptr<nm_heap_t> heap_;   /* owning for a policy, else not */
};

/* A standard allocator placing its blocks by a binding. */
template <class T>
class allocator {
public:
    using value_type = T;
    using propagate_on_container_move_assignment = std::true_type;
    using propagate_on_container_swap = std::true_type;
    using propagate_on_container_copy_assignment = std::false_type;
    using is_always_equal = std::false_type;
    template <class U>
    struct rebind {
        using other = allocator<U>;
    };

    allocator() noexcept = default;
    allocator(binding b) noexcept : b_(std::move(b)) {}
    allocator(on_node n) noexcept : b_(n) {}
    allocator(nm_heap_t *h) noexcept : b_(h) {}
    allocator(const numamalloc::heap &h) noexcept : b_(h) {}
    allocator(numamalloc::heap &&) = delete;   /* would dangle */
    explicit allocator(const nm_policy &policy) : b_(policy) {}
    template <class U>
    allocator(const allocator<U> &o) noexcept : b_(o.get_binding()) {}

    T *allocate(std::size_t n)
    {
        if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
        return static_cast<T *>(b_.allocate(n * sizeof(T), alignof(T)));
    }
    void deallocate(T *p, std::size_t) noexcept { binding::deallocate(p); }

    const binding &get_binding() const noexcept { return b_; }

    template <class U>
    friend bool operator==(const allocator &a, const allocator<U> &b) noexcept
    {
        return a.get_binding() == b.get_binding();
    }
    template <class U>
    friend bool operator!=(const allocator &a, const allocator<U> &b) noexcept
    {
        return !(a == b);
    }

private:
    binding b_;
};

#ifdef NUMAMALLOC_HPP_PMR
/* A std::pmr::memory_resource placing its blocks by a binding. */
class memory_resource : public std::pmr::memory_resource {
public:
    memory_resource() noexcept = default;
    memory_resource(binding b) noexcept : b_(std::move(b)) {}
    memory_resource(on_node n) noexcept : b_(n) {}
    memory_resource(nm_heap_t *h) noexcept : b_(h) {}
    memory_resource(const numamalloc::heap &h) noexcept : b_(h) {}
    memory_resource(numamalloc::heap &&) = delete;   /* would dangle */
    explicit memory_resource(const nm_policy &policy) : b_(policy) {}

    const binding &get_binding() const noexcept { return b_; }

private:
    void *do_allocate(std::size_t bytes, std::size_t alignment) override
    {
        return b_.allocate(bytes, alignment);
    }
    void do_deallocate(void *p, std::size_t, std::size_t) override { binding::deallocate(p); }
    bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override
    {
        if (this == &other) return true;
#if defined(__GXX_RTTI) || defined(__cpp_rtti)
        auto *o = dynamic_cast<const memory_resource *>(&other);
        return o && o->b_ == b_;
#else
        return false;   /* without RTTI another resource cannot be told apart */
#endif
    }

    binding b_;
};
#endif

} // namespace numamalloc

#endif /* NUMAMALLOC_HPP */
