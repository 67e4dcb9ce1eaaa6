/* size_classes.c — the block-start check of free() (page.h:
 * nm_is_block_offset, one multiply by ceil(2^64 / size) and one compare)
 * says "a block starts here" exactly at the multiples of the block size:
 * checked for every size class and every byte offset of its page (64 KiB
 * up to 8 KiB blocks, 512 KiB above), as snmalloc checks its size-class
 * table; nm_block_index (the block holding an offset, by the same
 * multiply) is off / size at every such offset.  Also: every size from 1 B to 256 KiB gets the smallest class that
 * holds it (nm_size_class, exhaustively), and nm_aligned_class gives a class
 * whose size is a multiple of every alignment up to 256 KiB (the aligned
 * paths rely on it), and the aligned fast path's direct-table slot
 * (heap.h: nm_aligned_slot) lands in that class for every size and
 * alignment up to 1 KiB. */
#include "../testutil.h"
#include "heap.h"

int main(void)
{
    nm_page_classes_init();
    for (unsigned c = 0; c < NM_CLASS_COUNT; c++) {
        uint32_t size = nm_class_size[c];
        uint64_t recip = nm_block_recip(size);
        uint64_t page = (uint64_t)1 << (nm_class_kind(c) == NM_SEGMENT_SMALL ? NM_SMALL_PAGE_SHIFT
                                                                          : NM_MEDIUM_PAGE_SHIFT);
        CHECK(size >= 16 && page / size >= 1, "class %u: %u-byte blocks in a %llu-byte page", c,
              size, (unsigned long long)page);
        uint64_t wrong = 0, first = 0, wrong_index = 0, first_index = 0;
        for (uint64_t off = 0; off < page; off++) {
            if (nm_is_block_offset(off, recip) != (off % size == 0)) {
                if (!wrong++) first = off;
            }
            if (nm_block_index(off, recip) != off / size) {
                if (!wrong_index++) first_index = off;
            }
        }
        CHECK(wrong == 0, "class %u (%u B): %llu wrong answers, first at offset %llu", c, size,
              (unsigned long long)wrong, (unsigned long long)first);
        CHECK(wrong_index == 0, "class %u (%u B): %llu wrong block indexes, first at offset %llu", c,
              size, (unsigned long long)wrong_index, (unsigned long long)first_index);
    }
    /* Every size gets the smallest class that holds it. */
    for (size_t size = 1; size <= NM_MEDIUM_MAX; size++) {
        unsigned c = nm_size_class(size);
        if (c >= NM_CLASS_COUNT || nm_class_size[c] < size ||
            (c > 0 && nm_class_size[c - 1] >= size && size > 16)) {
            CHECK(0, "nm_size_class(%zu) = %u", size, c);
            break;
        }
    }
    for (unsigned c = 1; c < NM_CLASS_COUNT; c++)
        CHECK(nm_class_size[c] > nm_class_size[c - 1], "class %u is not above class %u", c, c - 1);
    for (size_t align = 32; align <= NM_MEDIUM_MAX; align *= 2) {
        for (size_t size = 0; size <= NM_MEDIUM_MAX; size += size < 8192 ? 1 : 97) {
            unsigned c = nm_aligned_class(size, align);
            if (c >= NM_CLASS_COUNT || nm_class_size[c] % align || nm_class_size[c] < size) {
                CHECK(0, "nm_aligned_class(%zu, %zu) = %u", size, align, c);
                break;
            }
        }
    }
    /* The aligned fast path's direct-table slot picks nm_aligned_class's
     * class for every size and alignment up to NM_DIRECT_MAX. */
    for (size_t align = 32; align <= NM_DIRECT_MAX; align *= 2) {
        for (size_t size = 0; size <= NM_DIRECT_MAX; size++) {
            size_t slot = nm_aligned_slot(size, align);
            if (slot > NM_DIRECT_MAX || nm_size_class(slot) != nm_aligned_class(size, align)) {
                CHECK(0, "nm_aligned_slot(%zu, %zu) = %zu: class %u, nm_aligned_class %u", size, align,
                      slot, nm_size_class(slot), nm_aligned_class(size, align));
                break;
            }
        }
    }
    return nm_test_done();
}
