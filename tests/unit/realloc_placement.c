/* realloc_placement.c — a block keeps its placement through realloc: a
 * block from nm_malloc_onnode(..., n) stays bound to n, and a block of a
 * heap with a policy (bind, preferred, interleave) stays in that heap with
 * its policy, whether it grows or shrinks, in place or moved, across the
 * small, medium, large and huge ranges, through realloc, nm_realloc and
 * nm_heap_realloc.  Checked against the kernel: the memory policy of the new
 * block's pages is the one a fresh block from the same source gets, bound
 * blocks' pages sit on their node (move_pages), and the blocks of a heap go
 * away with nm_heap_destroy.  nm_heap_realloc of a block of another heap
 * moves it into the named heap.  Runs on every node with memory, here and
 * in the multi-node guests (tests/vm/api.sh). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "numamalloc.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* From -> to: each step of a chain starts from the block the one before
 * returned.  In place (shrink a little), small -> small, small -> medium,
 * medium -> large, large -> huge (grows in its span or moves with mremap),
 * huge -> huge (bigger), huge -> small (moves), small -> small (shrink by
 * more than half: moves). */
static const size_t chain[] = { 200, 180, 3000, 100 * KiB, 1 * MiB, 5 * MiB, 13 * MiB, 100, 40 };
#define STEPS (sizeof chain / sizeof chain[0])

enum source { ONNODE, HEAP_BIND, HEAP_PREFERRED, HEAP_INTERLEAVE, SOURCES };
static const char *const source_name[] = { "onnode", "heap bind", "heap preferred", "heap interleave" };
enum via { VIA_REALLOC, VIA_NM_REALLOC, VIA_HEAP_REALLOC, VIAS };
static const char *const via_name[] = { "realloc", "nm_realloc", "nm_heap_realloc" };

struct target {
    enum source source;
    int node;
    nm_heap_t *heap;    /* heap sources */
};

static void *fresh(const struct target *t, size_t size)
{
    return t->source == ONNODE ? nm_malloc_onnode(size, t->node) : nm_heap_malloc(t->heap, size);
}

static void *resize(const struct target *t, enum via via, void *p, size_t size)
{
    switch (via) {
    case VIA_REALLOC: return realloc(p, size);
    case VIA_NM_REALLOC: return nm_realloc(p, size);
    case VIA_HEAP_REALLOC: return nm_heap_realloc(t->heap, p, size);
    default: return NULL;
    }
}

static void fill(unsigned char *p, size_t size, unsigned seed)
{
    for (size_t i = 0; i < size; i += 61) p[i] = (unsigned char)(seed + i / 61);
    p[size - 1] = (unsigned char)seed;
}

static size_t differences(const unsigned char *p, size_t size, unsigned seed)
{
    size_t bad = 0;
    for (size_t i = 0; i < size; i += 61) bad += p[i] != (unsigned char)(seed + i / 61);
    return bad;
}

/* The policy a fresh block of `size` from the same source gets. */
static int reference_policy(const struct target *t, size_t size, unsigned long *mask)
{
    void *r = fresh(t, size);
    REQUIRE(r != NULL, "%s: a fresh %zu-byte block", source_name[t->source], size);
    memset(r, 1, size < 4096 ? size : 4096);
    int mode = nm_test_policy_of(r, mask);
    free(r);
    return mode;
}

/* Run the chain through `via`; returns the last block (still live). */
static void *run_chain(const struct target *t, enum via via)
{
    unsigned char *p = fresh(t, chain[0]);
    REQUIRE(p != NULL);
    fill(p, chain[0], 1);
    for (size_t step = 1; step < STEPS; step++) {
        size_t from = chain[step - 1], to = chain[step];
        unsigned char *q = resize(t, via, p, to);
        REQUIRE(q != NULL, "%s node %d: %s(%zu -> %zu)", source_name[t->source], t->node,
                via_name[via], from, to);
        size_t kept = from < to ? from : to;
        CHECK(differences(q, kept - 1, (unsigned)step) == 0, "%s node %d: %s(%zu -> %zu) lost the contents",
              source_name[t->source], t->node, via_name[via], from, to);
        fill(q, to, (unsigned)step + 1);
        unsigned long want_mask = 0, got_mask = 0;
        int want = reference_policy(t, to, &want_mask);
        int got = nm_test_policy_of(q, &got_mask);
        CHECK(got == want && got_mask == want_mask,
              "%s node %d: %s(%zu -> %zu): the block's policy is %d mask %#lx, a fresh block's %d mask %#lx",
              source_name[t->source], t->node, via_name[via], from, to, got, got_mask, want, want_mask);
        if (t->source == ONNODE || t->source == HEAP_BIND) {
            int first = nm_test_node_of(q), last = nm_test_node_of(q + to - 1);
            CHECK(first == t->node && last == t->node,
                  "%s node %d: %s(%zu -> %zu): pages on nodes %d and %d", source_name[t->source], t->node,
                  via_name[via], from, to, first, last);
        }
        p = q;
    }
    return p;
}

int main(void)
{
    int ids[64];
    int count = nm_node_ids(ids, 64);
    REQUIRE(count > 0);
    int checked = 0;
    for (int i = 0; i < count; i++) {
        int node = ids[i];
        uint64_t total = 0;
        if (nm_node_memory(node, &total, NULL) != 0 || total == 0) continue;   /* nothing to bind */
        nm_nodeset one;
        nm_nodeset_clear(&one);
        nm_nodeset_add(&one, node);
        nm_policy policies[SOURCES];
        policies[HEAP_BIND] = nm_policy_bind(&one);
        policies[HEAP_PREFERRED] = nm_policy_preferred(node);
        nm_policy inter;
        REQUIRE(nm_policy_parse("interleave:all", &inter, NULL, 0) == 0);
        policies[HEAP_INTERLEAVE] = inter;
        for (enum source src = ONNODE; src < SOURCES; src++) {
            struct target t = { .source = src, .node = node, .heap = NULL };
            void *last[VIAS] = { NULL };
            if (src != ONNODE) {
                t.heap = nm_heap_new(&policies[src]);
                REQUIRE(t.heap != NULL, "nm_heap_new(%s) on node %d", source_name[src], node);
            }
            for (enum via via = VIA_REALLOC; via < VIAS; via++) {
                if (via == VIA_HEAP_REALLOC && src == ONNODE) continue;
                last[via] = run_chain(&t, via);
            }
            if (src == ONNODE) {
                for (enum via via = VIA_REALLOC; via < VIAS; via++) free(last[via]);
                continue;
            }
            /* The heap's blocks, however often they moved, are its own:
             * they go away with it. */
            for (enum via via = VIA_REALLOC; via < VIAS; via++)
                CHECK(nm_usable_size(last[via]) > 0, "%s: block lost before destroy", source_name[src]);
            nm_heap_destroy(t.heap);
            for (enum via via = VIA_REALLOC; via < VIAS; via++)
                CHECK(nm_usable_size(last[via]) == 0,
                      "%s node %d: the block moved by %s outlived nm_heap_destroy (it left the heap)",
                      source_name[src], node, via_name[via]);
        }
        checked++;
    }

    /* nm_heap_realloc moves a block of malloc or of another heap into the
     * named heap, even when the size would fit where it is. */
    nm_nodeset one;
    nm_nodeset_clear(&one);
    nm_nodeset_add(&one, ids[0]);
    nm_policy bind = nm_policy_bind(&one);
    nm_heap_t *a = nm_heap_new(&bind), *b = nm_heap_new(&bind);
    REQUIRE(a && b);
    unsigned char *p = malloc(500);
    REQUIRE(p != NULL);
    fill(p, 500, 9);
    unsigned char *q = nm_heap_realloc(a, p, 500);
    REQUIRE(q != NULL);
    CHECK(differences(q, 499, 9) == 0);
    unsigned char *r = nm_heap_realloc(b, q, 400);
    REQUIRE(r != NULL);
    CHECK(differences(r, 399, 9) == 0);
    nm_heap_destroy(a);
    CHECK(nm_usable_size(r) > 0, "the block moved into heap b went away with heap a");
    nm_heap_destroy(b);
    CHECK(nm_usable_size(r) == 0, "the block moved into heap b outlived it");

    printf("realloc kept the placement of on-node and heap blocks on %d node(s)\n", checked);
    return nm_test_done();
}
