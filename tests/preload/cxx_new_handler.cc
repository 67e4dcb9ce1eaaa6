// cxx_new_handler.cc — a failed C++ new under LD_PRELOAD behaves exactly as it
// does with glibc's malloc: the installed new-handler is called until it
// gives up (here: the first call frees a reserve, the second uninstalls the
// handler), then std::bad_alloc is thrown; nothrow new returns nullptr after
// the same handler calls; over-aligned new follows the same rules; a handler
// may throw its own bad_alloc; and a handler that makes memory available
// (by raising RLIMIT_AS) lets the retried allocation succeed.  Exit 0 on success.
#include <dlfcn.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#ifndef NM_ALLOC_SYMBOL
#define NM_ALLOC_SYMBOL "nm_malloc"
#endif

#include "../testutil.h"

// Sizes no allocator can satisfy, read through volatile so that the compiler
// cannot see them and must call operator new.
static volatile size_t huge_volatile = SIZE_MAX / 2;

// Results pass through here so that the compiler cannot elide an allocation
// whose pointer is only compared with nullptr (clang does, assuming success).
static void *volatile sink;

template <typename T> static bool is_null(T *p)
{
    sink = p;
    bool null = sink == nullptr;
    if (!null) std::fprintf(stderr, "allocation that must fail returned %p\n", sink);
    return null;
}

struct alignas(4096) Page {
    unsigned char bytes[4096];
};
struct alignas(2 * 1024 * 1024) HugePage {
    unsigned char bytes[2 * 1024 * 1024];
};

// The handler: the first call frees the reserve and returns (new retries), the
// second uninstalls itself and returns (new retries, then throws bad_alloc).
static int handler_calls;
static char *reserve;

static void reserve_handler()
{
    handler_calls++;
    if (reserve) {
        delete[] reserve;
        reserve = nullptr;
        return;
    }
    std::set_new_handler(nullptr);
}

static void install_reserve_handler()
{
    handler_calls = 0;
    reserve = new char[1 << 20];
    std::memset(reserve, 1, 1 << 20);
    std::set_new_handler(reserve_handler);
}

// After one failed allocation: two handler calls, reserve freed, handler gone.
static void check_handler_ran(int line)
{
    CHECK(handler_calls == 2 && reserve == nullptr && std::get_new_handler() == nullptr,
          "line %d: new-handler called %d times (want 2), reserve %s, handler %s", line, handler_calls,
          reserve ? "kept" : "freed", std::get_new_handler() ? "installed" : "removed");
    delete[] reserve;
    reserve = nullptr;
    std::set_new_handler(nullptr);
}

// What a throwing new did: 0 nothing thrown, 1 std::bad_alloc, 2 something else.
enum Outcome { RETURNED, BAD_ALLOC, OTHER };

template <typename F> static Outcome outcome_of(F allocate)
{
    try {
        void *p = allocate();
        std::fprintf(stderr, "allocation that must fail returned %p\n", p);
        return RETURNED;
    } catch (const std::bad_array_new_length &) {
        std::fprintf(stderr, "std::bad_array_new_length where operator new should have been called\n");
        return OTHER;
    } catch (const std::bad_alloc &) {
        return BAD_ALLOC;
    } catch (...) {
        return OTHER;
    }
}

static void throwing_new()
{
    size_t huge = huge_volatile;

    install_reserve_handler();
    CHECK(outcome_of([&] { return new char[huge]; }) == BAD_ALLOC);
    check_handler_ran(__LINE__);

    install_reserve_handler();
    CHECK(outcome_of([&] { return ::operator new(huge); }) == BAD_ALLOC);
    check_handler_ran(__LINE__);

    install_reserve_handler();
    CHECK(outcome_of([&] { return new Page[huge / sizeof(Page)]; }) == BAD_ALLOC);
    check_handler_ran(__LINE__);

    install_reserve_handler();
    CHECK(outcome_of([&] { return ::operator new(huge, std::align_val_t(2 * 1024 * 1024)); }) == BAD_ALLOC);
    check_handler_ran(__LINE__);

    install_reserve_handler();
    CHECK(outcome_of([&] { return new HugePage[huge / sizeof(HugePage)]; }) == BAD_ALLOC);
    check_handler_ran(__LINE__);

    // No handler at all: bad_alloc straight away.
    handler_calls = 0;
    CHECK(outcome_of([&] { return new char[huge]; }) == BAD_ALLOC);
    CHECK(outcome_of([&] { return new Page[huge / sizeof(Page)]; }) == BAD_ALLOC);
    CHECK(handler_calls == 0);
}

static void nothrow_new()
{
    size_t huge = huge_volatile;

    install_reserve_handler();
    CHECK(is_null(new (std::nothrow) char[huge]));
    check_handler_ran(__LINE__);

    install_reserve_handler();
    CHECK(is_null(new (std::nothrow) Page[huge / sizeof(Page)]));
    check_handler_ran(__LINE__);

    install_reserve_handler();
    CHECK(is_null(::operator new(huge, std::align_val_t(64), std::nothrow)));
    check_handler_ran(__LINE__);

    handler_calls = 0;
    CHECK(is_null(new (std::nothrow) char[huge]));
    CHECK(is_null(::operator new[](huge, std::nothrow)));
    CHECK(is_null(new (std::nothrow) HugePage[huge / sizeof(HugePage)]));
    CHECK(handler_calls == 0);

    // The C view of the same failure.  malloc is called through a volatile
    // pointer: clang assumes malloc leaves errno alone and would fold the check.
    void *(*volatile c_malloc)(size_t) = std::malloc;
    errno = 0;
    CHECK(is_null(c_malloc(huge)));
    CHECK(errno == ENOMEM);
}

// A handler may throw an exception derived from bad_alloc; new lets it through.
struct HandlerGaveUp : std::bad_alloc {
    const char *what() const noexcept override { return "handler gave up"; }
};

static void throwing_handler()
{
    handler_calls++;
    throw HandlerGaveUp();
}

static void handler_throws()
{
    size_t huge = huge_volatile;
    handler_calls = 0;
    std::set_new_handler(throwing_handler);
    bool caught = false;
    try {
        char *p = new char[huge];
        std::fprintf(stderr, "allocation that must fail returned %p\n", static_cast<void *>(p));
    } catch (const HandlerGaveUp &) {
        caught = true;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "the handler's exception was replaced by: %s\n", e.what());
    }
    CHECK(caught);
    CHECK(handler_calls == 1);
    CHECK(is_null(new (std::nothrow) Page[huge / sizeof(Page)]));   // nothrow swallows it
    CHECK(handler_calls == 2);
    std::set_new_handler(nullptr);
}

// Under an address-space limit a 256 MiB new fails; the handler lifts the
// limit and returns, and the retried allocation must then succeed.
static struct rlimit saved_limit;

static void lift_limit_handler()
{
    handler_calls++;
    if (setrlimit(RLIMIT_AS, &saved_limit) != 0) std::set_new_handler(nullptr);
}

static size_t address_space_bytes()
{
    unsigned long pages = 0;
    FILE *f = std::fopen("/proc/self/statm", "r");
    if (f) {
        if (std::fscanf(f, "%lu", &pages) != 1) pages = 0;
        std::fclose(f);
    }
    return size_t(pages) * 4096;
}

static void handler_makes_room()
{
    const size_t size = size_t(256) << 20;
    if (getrlimit(RLIMIT_AS, &saved_limit) != 0 || saved_limit.rlim_cur != RLIM_INFINITY) {
        std::fprintf(stderr, "note: RLIMIT_AS already set, the lift-the-limit case is left out\n");
        return;
    }
    size_t in_use = address_space_bytes();
    CHECK(in_use > 0);
    struct rlimit tight = saved_limit;
    tight.rlim_cur = in_use + (size_t(64) << 20);
    CHECK(setrlimit(RLIMIT_AS, &tight) == 0);

    handler_calls = 0;
    std::set_new_handler(lift_limit_handler);
    char *p = nullptr;
    try {
        p = new char[size];
    } catch (...) {
        std::fprintf(stderr, "new threw although the handler lifted the limit\n");
    }
    std::set_new_handler(nullptr);
    setrlimit(RLIMIT_AS, &saved_limit);
    CHECK(p != nullptr);
    CHECK(handler_calls == 1);
    if (p) {
        p[0] = 1;
        p[size / 2] = 2;
        p[size - 1] = 3;
        CHECK(p[0] + p[size / 2] + p[size - 1] == 6);
        delete[] p;
    }
}

// After all the failures, ordinary and aligned allocations still work.
static void still_works()
{
    for (int i = 0; i < 1000; i++) {
        char *c = new char[size_t(1 + i * 37)];
        c[i * 37] = char(i);
        Page *pg = new Page;
        CHECK(reinterpret_cast<uintptr_t>(pg) % alignof(Page) == 0);
        pg->bytes[4095] = 1;
        delete pg;
        delete[] c;
    }
    HugePage *hp = new HugePage;
    CHECK(reinterpret_cast<uintptr_t>(hp) % alignof(HugePage) == 0);
    hp->bytes[0] = hp->bytes[sizeof hp->bytes - 1] = 7;
    delete hp;
}

int main()
{
    if (!dlsym(RTLD_DEFAULT, NM_ALLOC_SYMBOL)) {
        std::fprintf(stderr, "%s not found: numamalloc is not loaded (run through tests/run.sh)\n",
                     NM_ALLOC_SYMBOL);
        return 2;
    }
    throwing_new();
    nothrow_new();
    handler_throws();
    handler_makes_room();
    still_works();
    if (nm_test_failures) return nm_test_done();
    std::printf("cxx_new_handler: ok\n");
    return 0;
}
