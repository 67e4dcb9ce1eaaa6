// cxx_set_heap.cc — C++ under LD_PRELOAD with a heap set for the thread
// (nm_thread_set_heap): the standard library's containers (std::vector,
// small and large, grown by push_back; std::string; std::map nodes;
// std::unique_ptr from new; aligned new) allocate from the heap set, with
// no change to the code that uses them, and a vector made before the heap
// was set grows into it; after the heap is unset new containers are plain
// again, a heap vector that grows moves its storage out of the heap (with
// its contents), and the heap's other containers keep theirs.  The nm_
// functions are looked up with dlsym, as the program would find them in the
// preloaded library.  Exit 0 on success.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "../../include/numamalloc.h"
#include "../testutil.h"

static decltype(&nm_ptr_info) ptr_info;

static nm_heap_t *heap_of(const void *p)
{
    struct nm_ptr_info info;
    if (ptr_info(p, &info) != 0) return reinterpret_cast<nm_heap_t *>(-1);
    return info.heap;
}

struct alignas(256) Wide {
    char bytes[256];
};

int main()
{
    auto heap_new = reinterpret_cast<decltype(&nm_heap_new)>(dlsym(RTLD_DEFAULT, "nm_heap_new"));
    auto set_heap = reinterpret_cast<decltype(&nm_thread_set_heap)>(dlsym(RTLD_DEFAULT, "nm_thread_set_heap"));
    auto destroy = reinterpret_cast<decltype(&nm_heap_destroy)>(dlsym(RTLD_DEFAULT, "nm_heap_destroy"));
    ptr_info = reinterpret_cast<decltype(&nm_ptr_info)>(dlsym(RTLD_DEFAULT, "nm_ptr_info"));
    if (!heap_new || !set_heap || !destroy || !ptr_info) {
        std::fprintf(stderr, "nm_thread_set_heap not found: numamalloc is not loaded (run through tests/run.sh)\n");
        return 2;
    }
    nm_heap_t *h = heap_new(nullptr);
    CHECK(h != nullptr);
    {
        std::vector<int> plain_before(100, 1);
        CHECK(set_heap(h) == nullptr);
        std::vector<int> small(100, 7);
        std::vector<double> big;
        for (int i = 0; i < 1000000; i++) big.push_back(i);   // grows through realloc-like moves
        std::string text(5000, 'x');
        std::map<int, std::string> table;
        for (int i = 0; i < 100; i++) table[i] = std::string(40, char('a' + i % 26));
        auto owned = std::make_unique<long[]>(300);
        Wide *wide = new Wide[3];
        CHECK(heap_of(small.data()) == h);
        CHECK(heap_of(big.data()) == h);
        CHECK(heap_of(text.data()) == h);
        CHECK(heap_of(&*table.begin()) == h);
        CHECK(heap_of(table.begin()->second.data()) == h);
        CHECK(heap_of(owned.get()) == h);
        CHECK(heap_of(wide) == h && reinterpret_cast<uintptr_t>(wide) % 256 == 0);
        CHECK(heap_of(plain_before.data()) == nullptr);
        plain_before.resize(100000);   // a vector grows into new storage (operator new)
        CHECK(heap_of(plain_before.data()) == h);
        delete[] wide;
        CHECK(set_heap(nullptr) == h);
        std::vector<int> after(1000, 3);
        CHECK(heap_of(after.data()) == nullptr);
        for (int i = 0; i < 1000000; i++) big.push_back(-i);
        CHECK(heap_of(big.data()) == nullptr);   // new storage comes from where new goes now
        double sum = 0;
        for (size_t i = 0; i < 1000000; i++) sum += big[i];
        CHECK(sum == 499999500000.0);
        CHECK(small[99] == 7 && text[4999] == 'x' && table[99].size() == 40);
    }
    destroy(h);
    if (!nm_test_failures)
        std::printf("cxx_set_heap: std::vector, std::string, std::map, make_unique and aligned new came from the heap set\n");
    return nm_test_done();
}
