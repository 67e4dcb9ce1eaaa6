/*
 * page.c — size classes, carving and collecting the blocks of a page,
 * giving back the inside of free medium blocks, and the report of a free
 * list found corrupt.  May call the segment layer (for layout and the
 * block encoding), the os layer's output helpers and decommit, and the
 * options.  Only whoever owns a page's lists (its owner; a purge holding
 * an exited thread's heap or an abandoned segment) carves, collects and
 * takes blocks.
 */
#include "page.h"

#include <string.h>

#include "options.h"
#include "os.h"

uint32_t nm_class_size[NM_CLASS_COUNT];

void nm_page_classes_init(void)
{
    for (unsigned c = 0; c < 8; c++) nm_class_size[c] = 16 * (c + 1);
    for (unsigned c = 8; c < NM_SMALL_CLASSES; c++) {
        unsigned k = 7 + (c - 8) / 8, step = (c - 8) % 8;
        nm_class_size[c] = (1u << k) + (step + 1) * (1u << (k - 3));
    }
    for (unsigned c = NM_SMALL_CLASSES; c < NM_CLASS_COUNT; c++) {
        unsigned j = c - NM_SMALL_CLASSES, k = 13 + j / 2;    /* 1.5 * 2^k, then 2^(k+1) */
        nm_class_size[c] = j % 2 ? 2u << k : 3u << (k - 1);
    }
}

void nm_page_format(struct nm_segment *s, size_t index, unsigned cls)
{
    struct nm_page *pg = &s->pages[index];
    size_t page_size = (size_t)1 << s->page_shift;
    size_t block = nm_class_size[cls];
    size_t offset = 0;
    if (index == 0) {
        size_t natural = block & (~block + 1);   /* largest power of two dividing it */
        if (natural > page_size) natural = page_size;
        offset = nm_align_up(nm_segment_header_size(s), natural < 16 ? 16 : natural);
    }
    pg->free = NULL;
    pg->used = 0;
    pg->block_size = (uint32_t)block;
    pg->block_recip = nm_block_recip((uint32_t)block);
    pg->start = nm_page_base(s, index) + offset;
    atomic_store_explicit(&pg->carved, 0, memory_order_relaxed);
    pg->reserved = (uint16_t)((page_size - offset - nm_page_guard(s, index)) / block);
    pg->size_class = (uint8_t)cls;
    atomic_store_explicit(&pg->remote, NULL, memory_order_relaxed);
    atomic_store_explicit(&pg->local_owner, 0, memory_order_relaxed);
    pg->next = pg->prev = NULL;
}

/* xorshift64*: the next number of state `*x` (never 0). */
static uint64_t next_random(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1Dull;
}

bool nm_page_extend(struct nm_page *pg, uint64_t *shuffle)
{
    uint32_t capacity = nm_page_capacity(pg);
    uint32_t left = pg->reserved - capacity;
    if (left == 0) return false;
    size_t size = pg->block_size;
    uint8_t *first = pg->start + (size_t)capacity * size;
    uint32_t count = (uint32_t)(NM_EXTEND_BYTES / size);
    if (count == 0) count = 1;
    if (pg->touched_end > first) {
        size_t resident = (size_t)(pg->touched_end - first) / size;
        if (resident > NM_EXTEND_RESIDENT) resident = NM_EXTEND_RESIDENT;
        if (count < resident) count = (uint32_t)resident;
    }
    if (count > left) count = left;
    if (first + (size_t)count * size > pg->touched_end) pg->touched_end = first + (size_t)count * size;

    /* Encoded from the last block back: the list runs in address order,
     * or in the order of a shuffle (Fisher-Yates) of the block indices. */
    uint16_t order[NM_EXTEND_MAX_BLOCKS];
    _Static_assert(NM_EXTEND_BYTES / 16 <= NM_EXTEND_MAX_BLOCKS &&
                   NM_EXTEND_RESIDENT <= NM_EXTEND_MAX_BLOCKS, "a carve fits the order table");
    if (shuffle) {
        for (uint32_t i = 0; i < count; i++) order[i] = (uint16_t)i;
        for (uint32_t i = count - 1; i > 0; i--) {
            uint32_t j = (uint32_t)(next_random(shuffle) % (i + 1));
            uint16_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }
    struct nm_block *next = pg->free;
    for (uint32_t i = count; i-- > 0;) {
        struct nm_block *block = (struct nm_block *)(first + (size_t)(shuffle ? order[i] : i) * size);
        nm_block_set_next(block, next);
        /* Memory a page of another class left resident may hold a mark at
         * this address. */
        if (size > NM_SMALL_MAX) *nm_block_mark(block) = 0;
        next = block;
    }
    pg->free = next;
    atomic_store_explicit(&pg->carved, (uint32_t)((capacity + count) * size), memory_order_relaxed);
    return true;
}

uint32_t nm_page_collect(struct nm_page *pg)
{
    if (!nm_page_has_remote(pg)) return 0;
    struct nm_block *list = atomic_exchange_explicit(&pg->remote, NULL, memory_order_acquire);
    uint32_t count = 0, most = nm_page_capacity(pg);
    struct nm_block *tail = NULL;
    for (struct nm_block *b = list; b; b = nm_block_next(b)) {
        /* A link that leaves the page, or a block whose words were written
         * after it was freed: the rest of the list is dropped.  More
         * blocks than the page has carved: a block was pushed twice and
         * the list runs in a cycle; all of it is dropped. */
        if (count == most || !nm_page_is_block(pg, b) || !nm_block_is_free(b)) {
            nm_page_corrupt(pg, b, "remote-free", true);
            if (count == most) return 0;
            break;
        }
        tail = b;
        count++;
    }
    if (!tail) return 0;
    nm_block_set_next(tail, pg->free);
    pg->free = list;
    __atomic_store_n(&pg->used, pg->used - count, __ATOMIC_RELAXED);
    return count;
}

/* Added to the count of a page found corrupt: it never reaches 0. */
#define NM_PAGE_PINNED (1u << 30)

/* Where the inside of free block `b` starts (its first OS page, with the
 * list words and the mark, stays). */
static uintptr_t block_inside(struct nm_block *b)
{
    return nm_align_up((uintptr_t)(nm_block_mark(b) + 1), NM_OS_PAGE);
}

uint32_t nm_page_take_due_blocks(struct nm_page *pg, uint64_t now_ms, bool due_now,
                                 bool *waiting, struct nm_block **out, uint32_t max)
{
    if (pg->used >= NM_PAGE_PINNED) return 0;
    uint32_t most = nm_page_capacity(pg), visited = 0, taken = 0;
    struct nm_block *prev = NULL, *next;
    for (struct nm_block *b = pg->free; b && taken < max && visited < most; b = next) {
        visited++;
        /* A corrupt list is the allocation path's to report: stop here. */
        if (!nm_block_is_free(b)) break;
        next = nm_block_next(b);
        uint64_t key = nm_block_mark_key(b), mark = *nm_block_mark(b) ^ key;
        if (mark != NM_MARK_PURGED) {
            bool seen = (uint32_t)mark == NM_MARK_SEEN;
            if (due_now ||
                (seen && nm_purge_due32((uint32_t)(mark >> 32), now_ms, nm_opt.purge_delay_ms, false))) {
                if (prev) nm_block_set_next(prev, next);
                else pg->free = next;
                out[taken++] = b;
                continue;
            }
            if (!seen) *nm_block_mark(b) = key ^ ((uint64_t)(uint32_t)now_ms << 32 | NM_MARK_SEEN);
            if (waiting) *waiting = true;
        }
        prev = b;
    }
    __atomic_store_n(&pg->used, pg->used + taken, __ATOMIC_RELAXED);
    return taken;
}

size_t nm_block_purge_inside(struct nm_block *b, size_t size)
{
    /* Medium classes are multiples of 4 KiB from 12 KiB, laid out 4 KiB-
     * aligned: every block has an inside. */
    uintptr_t inside = block_inside(b), end = nm_align_down((uintptr_t)b + size, NM_OS_PAGE);
    /* Marked whether the kernel did it or not (a locked range refuses):
     * a block is advised once. */
    *nm_block_mark(b) = nm_block_mark_key(b) ^ NM_MARK_PURGED;
    if (end <= inside || nm_os_decommit((void *)inside, end - inside) != 0) return 0;
    atomic_fetch_add_explicit(&nm_proc.counters.purges, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&nm_proc.counters.purged_bytes, end - inside, memory_order_relaxed);
    return end - inside;
}

void nm_page_put_back(struct nm_page *pg, struct nm_block *b)
{
    nm_block_set_next(b, pg->free);
    pg->free = b;
    __atomic_store_n(&pg->used, pg->used - 1, __ATOMIC_RELAXED);
}

nm_cold void nm_page_corrupt(struct nm_page *pg, const struct nm_block *b, const char *list,
                             bool pin)
{
    nm_line l = { .len = 0 };
    nm_line_str(&l, "heap corruption detected in ");
    nm_line_str(&l, list);
    nm_line_str(&l, " list of a ");
    nm_line_u64(&l, pg->block_size);
    nm_line_str(&l, "-byte block at ");
    nm_line_hex(&l, (uintptr_t)b);
    nm_line_str(&l, ": use after free or overflow");
    nm_report_error(&l);
    if (pin && pg->used < NM_PAGE_PINNED)
        __atomic_store_n(&pg->used, pg->used + NM_PAGE_PINNED, __ATOMIC_RELAXED);
}
