// cxx_threads.cc — multi-threaded C++ under LD_PRELOAD: std::thread, new and
// delete (sized, aligned, nothrow), std::vector/std::string/std::map, and
// shared_ptr objects handed between threads so that most are freed on a
// thread other than the one that made them.  Every object carries a pattern
// derived from its id that is checked before it dies, and the threads' result
// is compared with the same work done on one thread.  Exit 0 on success.
#include <dlfcn.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

// The allocator the test expects to find (numamalloc's API symbol); another
// name can be given at compile time to try the test on a different malloc.
#ifndef NM_ALLOC_SYMBOL
#define NM_ALLOC_SYMBOL "nm_malloc"
#endif

#include "../testutil.h"   // CHECK counts failures atomically: several threads call it

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static std::atomic<long> live_items{0};

// A work item: strings, a vector and a map, all sized from its id.
struct Item {
    uint64_t id;
    std::string name;
    std::vector<uint32_t> values;
    std::map<int, std::string> tags;

    explicit Item(uint64_t id_) : id(id_)
    {
        live_items++;
        name = "item-" + std::to_string(id) + std::string(id % 200, char('a' + id % 26));
        values.reserve(id % 64);
        for (uint64_t k = 0; k < id % 300; k++) values.push_back(uint32_t(id * 31 + k));
        for (int k = 0; k < int(id % 7); k++) tags[k * 3] = std::string(size_t(16 + k * 40), char('A' + k));
    }
    ~Item() { live_items--; }

    bool intact() const
    {
        if (name.compare(0, 5, "item-") != 0) return false;
        if (values.size() != id % 300 || tags.size() != id % 7) return false;
        for (size_t k = 0; k < values.size(); k++)
            if (values[k] != uint32_t(id * 31 + k)) return false;
        for (const auto &t : tags)
            if (t.second.size() != size_t(16 + t.first / 3 * 40) || t.second[0] != char('A' + t.first / 3))
                return false;
        return true;
    }

    uint64_t digest() const
    {
        uint64_t h = mix(id, name.size());
        for (char c : name) h = mix(h, uint8_t(c));
        for (uint32_t v : values) h = mix(h, v);
        for (const auto &t : tags) h = mix(h, uint64_t(t.first) << 32 | t.second.size());
        return h;
    }
};

// Over-aligned types: new of these must honour alignof.
struct alignas(64) Line {
    uint64_t word[8];
};
struct alignas(4096) Page {
    unsigned char bytes[4096];
};

// Sized operator delete, explicitly; clang declares it only with
// -fsized-deallocation, so fall back to the unsized form there.
static void delete_sized(void *p, size_t n)
{
#if __cpp_sized_deallocation
    ::operator delete(p, n);
#else
    (void)n;
    ::operator delete(p);
#endif
}

static void delete_sized_aligned(void *p, size_t n, std::align_val_t a)
{
#if __cpp_sized_deallocation
    ::operator delete(p, n, a);
#else
    (void)n;
    ::operator delete(p, a);
#endif
}

static bool aligned_to(const void *p, size_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

// A blocking queue of shared_ptr<Item>: producers push, consumers pop.
struct Queue {
    std::mutex lock;
    std::condition_variable ready;
    std::deque<std::shared_ptr<Item>> items;
    int producers_left;

    void push(std::shared_ptr<Item> item)
    {
        std::lock_guard<std::mutex> g(lock);
        items.push_back(std::move(item));
        ready.notify_one();
    }
    std::shared_ptr<Item> pop()     // nullptr once every producer is done
    {
        std::unique_lock<std::mutex> g(lock);
        ready.wait(g, [this] { return !items.empty() || producers_left == 0; });
        if (items.empty()) return nullptr;
        auto item = std::move(items.front());
        items.pop_front();
        return item;
    }
    void producer_done()
    {
        std::lock_guard<std::mutex> g(lock);
        producers_left--;
        ready.notify_all();
    }
};

enum { PRODUCERS = 3, CONSUMERS = 3, ITEMS_PER_PRODUCER = 20000 };

static uint64_t item_id(int producer, int i) { return uint64_t(producer) * 1000003u + uint64_t(i); }

// Producers keep every 8th item in a vector of their own as well, so that the
// last reference to it is dropped by whichever thread finishes with it last.
static void produce(Queue &q, int producer, std::vector<std::shared_ptr<Item>> &kept)
{
    for (int i = 0; i < ITEMS_PER_PRODUCER; i++) {
        auto item = std::make_shared<Item>(item_id(producer, i));
        if (i % 8 == 0) kept.push_back(item);
        q.push(std::move(item));
    }
    q.producer_done();
}

// Consumers check and digest items, free them, and build a map of their own
// that the main thread frees later.
static void consume(Queue &q, uint64_t &sum, long &count, std::map<uint64_t, std::string> &seen)
{
    while (auto item = q.pop()) {
        CHECK(item->intact());
        sum += item->digest();
        count++;
        if (item->id % 5 == 0) seen.emplace(item->id, item->name);
        // Over-aligned, sized and nothrow allocations made and freed here.
        Line *lines = new Line[1 + item->id % 9];
        CHECK(aligned_to(lines, 64));
        lines[0].word[0] = item->id;
        delete[] lines;
        if (item->id % 97 == 0) {
            Page *page = new Page;
            CHECK(aligned_to(page, 4096));
            std::memset(page->bytes, int(item->id & 0xff), sizeof page->bytes);
            CHECK(page->bytes[4095] == (item->id & 0xff));
            delete page;
        }
        size_t n = 24 + item->id % 2000;
        void *raw = ::operator new(n);
        std::memset(raw, 0x5a, n);
        delete_sized(raw, n);
        int *nothrow_block = new (std::nothrow) int[64 + item->id % 1000];
        CHECK(nothrow_block != nullptr);
        if (nothrow_block) nothrow_block[0] = 1;
        delete[] nothrow_block;
    }
}

// Explicit aligned operator new/delete, including the sized and nothrow forms.
static void aligned_forms()
{
    static const size_t aligns[] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 65536};
    for (size_t a : aligns) {
        for (size_t n : {size_t(1), a / 2 + 1, a, a * 3, size_t(100000)}) {
            void *p = ::operator new(n, std::align_val_t(a));
            CHECK(aligned_to(p, a));
            std::memset(p, 0xab, n);
            delete_sized_aligned(p, n, std::align_val_t(a));
            void *q = ::operator new[](n, std::align_val_t(a), std::nothrow);
            CHECK(q != nullptr && aligned_to(q, a));
            if (q) std::memset(q, 0xcd, n);
            ::operator delete[](q, std::align_val_t(a), std::nothrow);
        }
    }
    auto lines = std::make_unique<Line[]>(100);
    CHECK(aligned_to(lines.get(), 64));
    std::vector<Page> pages(3);
    CHECK(aligned_to(pages.data(), 4096));
    auto shared_page = std::make_shared<Page>();   // control block and Page in one allocation
    CHECK(aligned_to(shared_page.get(), 4096));
}

// A vector and a string grown one element at a time: realloc-like patterns.
static uint64_t growth(int seed)
{
    std::vector<std::string> v;
    std::string s;
    for (int i = 0; i < 20000; i++) {
        v.emplace_back(size_t(i % 50), char('a' + (i + seed) % 26));
        s += char('0' + i % 10);
        if (i % 1000 == 999) v.erase(v.begin(), v.begin() + 500);
    }
    uint64_t h = mix(v.size(), s.size());
    for (const auto &e : v) h = mix(h, e.size() ^ uint64_t(e.empty() ? 0 : e[0]));
    return mix(h, uint64_t(s[12345]));
}

int main()
{
    if (!dlsym(RTLD_DEFAULT, NM_ALLOC_SYMBOL)) {
        std::fprintf(stderr, "%s not found: numamalloc is not loaded (run through tests/run.sh)\n",
                     NM_ALLOC_SYMBOL);
        return 2;
    }

    // The same items digested on this thread alone: the reference result.
    uint64_t want_sum = 0;
    for (int p = 0; p < PRODUCERS; p++)
        for (int i = 0; i < ITEMS_PER_PRODUCER; i++) {
            Item item(item_id(p, i));
            want_sum += item.digest();
        }
    CHECK(live_items == 0);

    Queue q;
    q.producers_left = PRODUCERS;
    std::vector<std::vector<std::shared_ptr<Item>>> kept(PRODUCERS);
    std::vector<uint64_t> sums(CONSUMERS, 0);
    std::vector<long> counts(CONSUMERS, 0);
    std::vector<std::map<uint64_t, std::string>> seen(CONSUMERS);
    std::vector<uint64_t> growth_results(2, 0);
    std::vector<std::thread> threads;
    for (int c = 0; c < CONSUMERS; c++)
        threads.emplace_back(consume, std::ref(q), std::ref(sums[c]), std::ref(counts[c]), std::ref(seen[c]));
    for (int p = 0; p < PRODUCERS; p++) threads.emplace_back(produce, std::ref(q), p, std::ref(kept[p]));
    for (int g = 0; g < 2; g++) threads.emplace_back([&growth_results, g] { growth_results[g] = growth(g); });
    threads.emplace_back(aligned_forms);
    for (auto &t : threads) t.join();

    uint64_t got_sum = 0;
    long got_count = 0;
    for (int c = 0; c < CONSUMERS; c++) got_sum += sums[c], got_count += counts[c];
    CHECK(got_count == long(PRODUCERS) * ITEMS_PER_PRODUCER);
    CHECK(got_sum == want_sum);
    CHECK(growth_results[0] == growth(0));
    CHECK(growth_results[1] == growth(1));

    // The kept items survived their consumers; check them and free them here.
    long kept_count = 0;
    for (auto &v : kept) {
        for (auto &item : v) CHECK(item.use_count() == 1 && item->intact());
        kept_count += long(v.size());
        v.clear();
    }
    CHECK(kept_count == PRODUCERS * ((ITEMS_PER_PRODUCER + 7) / 8));
    CHECK(live_items == 0);

    // The consumers' maps, freed on this thread: every 5th id, names intact.
    size_t seen_count = 0;
    for (auto &m : seen) {
        for (const auto &e : m) CHECK(e.second == Item(e.first).name);
        seen_count += m.size();
        m.clear();
    }
    size_t want_seen = 0;
    for (int p = 0; p < PRODUCERS; p++)
        for (int i = 0; i < ITEMS_PER_PRODUCER; i++) want_seen += item_id(p, i) % 5 == 0;
    CHECK(seen_count == want_seen);

    aligned_forms();
    if (nm_test_failures) return nm_test_done();
    std::printf("cxx_threads: %ld items over %d threads, digest %016llx\n", got_count,
                PRODUCERS + CONSUMERS, static_cast<unsigned long long>(got_sum));
    return 0;
}
