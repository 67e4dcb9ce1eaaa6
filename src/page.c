/*
 * page.c — size classes, and carving and collecting the blocks of a page.
 * May call the segment layer (for layout).  Only a page's owner calls these.
 */
#include "page.h"

#include <string.h>

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
    pg->reserved = (uint16_t)((page_size - offset) / block);
    pg->size_class = (uint8_t)cls;
    atomic_store_explicit(&pg->remote, NULL, memory_order_relaxed);
    pg->next = pg->prev = NULL;
}

bool nm_page_extend(struct nm_page *pg)
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

    struct nm_block *block = (struct nm_block *)first;
    for (uint32_t i = 1; i < count; i++) {
        struct nm_block *next = (struct nm_block *)(first + i * size);
        block->next = next;
        block->freed = nm_proc.free_mark;
        block = next;
    }
    block->next = pg->free;
    block->freed = nm_proc.free_mark;
    pg->free = (struct nm_block *)first;
    atomic_store_explicit(&pg->carved, (uint32_t)((capacity + count) * size), memory_order_relaxed);
    return true;
}

uint32_t nm_page_collect(struct nm_page *pg)
{
    if (!nm_page_has_remote(pg)) return 0;
    struct nm_block *list = atomic_exchange_explicit(&pg->remote, NULL, memory_order_acquire);
    if (!list) return 0;
    uint32_t count = 1;
    struct nm_block *tail = list;
    while (tail->next) { tail = tail->next; count++; }
    tail->next = pg->free;
    pg->free = list;
    __atomic_store_n(&pg->used, pg->used - count, __ATOMIC_RELAXED);
    return count;
}
