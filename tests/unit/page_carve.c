/* page_carve.c — how many blocks a page carves at once (page.h).
 *
 * The pattern: a program builds runs of 4 KiB blocks and frees them all
 * (sh6bench, a parser's buffers), so the pages of the class empty, go back
 * to their segment, and are taken again a moment later with their memory
 * still resident.  Such a page must carve what is resident in one step (up
 * to NM_EXTEND_RESIDENT blocks), not one 4 KiB block per trip through the
 * allocator's slow path.  The corner: once nm_trim has given the pages'
 * memory back, a page taken again carves one 4 KiB step only, so a program
 * holding a few blocks commits no more than they need.
 *
 * Checked on each page a run takes: its carved capacity right after its
 * first block was handed out. */
#include "../testutil.h"
#include "numamalloc.h"
#include "page.h"

enum { BLOCK = 4096, BLOCKS = 96, MAX_PAGES = BLOCKS };   /* six pages' worth */

/* The pages a run used, and how many blocks each had carved at its end. */
struct run {
    int pages;                       /* pages opened (taken, or first used) by the run */
    struct nm_page *page[MAX_PAGES];
    uint32_t first_capacity[MAX_PAGES];   /* carved right after its first block */
    uint32_t end_capacity[MAX_PAGES];     /* carved at the end of the run */
};

/* Allocate BLOCKS blocks of 4 KiB into `live`, writing each. */
static void allocate_run(void **live, struct run *r)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < BLOCKS; i++) {
        live[i] = nm_malloc(BLOCK);
        REQUIRE(live[i], "nm_malloc(%d)", BLOCK);
        struct nm_page *pg = nm_page_of(nm_segment_of(live[i]), live[i]);
        if (pg->used == 1) {   /* its first block: the page was just taken */
            REQUIRE(r->pages < MAX_PAGES);
            r->page[r->pages] = pg;
            r->first_capacity[r->pages++] = nm_page_capacity(pg);
        }
        memset(live[i], 0x5a, BLOCK);
    }
    for (int k = 0; k < r->pages; k++) r->end_capacity[k] = nm_page_capacity(r->page[k]);
}

/* Blocks page `pg` had carved by the end of run `r` (0: not one of its). */
static uint32_t carved_in(const struct run *r, const struct nm_page *pg)
{
    for (int k = 0; k < r->pages; k++)
        if (r->page[k] == pg) return r->end_capacity[k];
    return 0;
}

static void free_run(void **live)
{
    for (int i = 0; i < BLOCKS; i++) nm_free(live[i]);
}

/* Every page run `r` took carved one block first (a 4 KiB step). */
static void check_one_step(const struct run *r, const char *which)
{
    CHECK(r->pages >= 4, "%s: %d pages", which, r->pages);
    for (int k = 0; k < r->pages; k++)
        CHECK(r->first_capacity[k] == 1, "%s: page %d carved %u blocks at once", which, k,
              r->first_capacity[k]);
}

int main(void)
{
    static void *live[BLOCKS];
    static struct run fresh, again, trimmed;

    /* Fresh memory: one 4 KiB step (one block) per trip. */
    allocate_run(live, &fresh);
    free_run(live);
    check_one_step(&fresh, "fresh memory");

    /* The same run again: its pages were released with their memory
     * resident and are taken again; each carves at once what the first run
     * had carved of it (up to NM_EXTEND_RESIDENT blocks). */
    allocate_run(live, &again);
    free_run(live);
    int reused = 0;
    for (int k = 0; k < again.pages; k++) {
        uint32_t before = carved_in(&fresh, again.page[k]);
        if (!before) continue;
        reused++;
        uint32_t want = before < NM_EXTEND_RESIDENT ? before : NM_EXTEND_RESIDENT;
        CHECK(again.first_capacity[k] >= want,
              "page %d taken again: %u blocks carved at once, %u were resident", k,
              again.first_capacity[k], before);
    }
    CHECK(reused >= 4, "%d of %d pages taken again", reused, again.pages);

    /* Memory given back: carving starts over one step at a time. */
    nm_trim();
    allocate_run(live, &trimmed);
    free_run(live);
    check_one_step(&trimmed, "after nm_trim");
    return nm_test_done();
}
