/* heap_migrate.c — nm_heap_migrate moves a heap's pages between nodes, as
 * the kernel reports them (move_pages), on a machine (or guest,
 * tests/vm/api.sh) with two nodes with memory; exits 77 with fewer.
 * A heap bound to the first node holds small, medium and large blocks,
 * written; it moves to the second node: every resident page of every
 * block is there after, the report counts them all asked and moved,
 * contents are intact, nm_ptr_info names the new node and policy, and
 * new blocks land there too; a move to an interleave of both nodes moves
 * nothing (the pages are on a node of the set); back to the first node
 * with a preferred policy moves them all back; a node without memory
 * or outside the cpuset (when the machine has one) gives EINVAL with
 * nothing changed. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "numamalloc.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define NBLOCKS 600

static char *blocks[NBLOCKS];
static size_t sizes[NBLOCKS];

/* Resident pages of every block, and how many of them are on `node`. */
static void where(int node, uint64_t *resident, uint64_t *on_node)
{
    *resident = *on_node = 0;
    for (int i = 0; i < NBLOCKS; i++) {
        uint64_t counts[NM_NODE_ID_LIMIT];
        memset(counts, 0, sizeof counts);
        long r = nm_where(blocks[i], sizes[i], counts, NM_NODE_ID_LIMIT);
        REQUIRE(r >= 0, "nm_where: %s", strerror(errno));
        *resident += (uint64_t)r;
        *on_node += counts[node];
    }
}

static void check_contents(const char *when)
{
    for (int i = 0; i < NBLOCKS; i++) {
        for (size_t j = 0; j < sizes[i]; j += 512) {
            if (blocks[i][j] != (char)(i * 7 + 1)) {
                CHECK(0, "%s: block %d byte %zu changed", when, i, j);
                return;
            }
        }
    }
}

static nm_policy one_node(int node, bool preferred)
{
    nm_nodeset set;
    nm_nodeset_clear(&set);
    nm_nodeset_add(&set, node);
    return preferred ? nm_policy_preferred(node) : nm_policy_bind(&set);
}

int main(void)
{
    int ids[NM_NODE_ID_LIMIT];
    int count = nm_node_ids(ids, NM_NODE_ID_LIMIT);
    int with_memory[2], n = 0, without = -1;
    for (int i = 0; i < count; i++) {
        nm_policy p = one_node(ids[i], false);
        if (nm_policy_check(&p, NULL, 0) == 0) {
            if (n < 2) with_memory[n++] = ids[i];
        } else if (without < 0) {
            without = ids[i];
        }
    }
    if (n < 2) {
        printf("needs two nodes whose memory this process may use (has %d)\n", n);
        return 77;
    }
    int a = with_memory[0], b = with_memory[1];
    nm_policy on_a = one_node(a, false), on_b = one_node(b, false);
    nm_heap_t *h = nm_heap_new(&on_a);
    REQUIRE(h != NULL);
    for (int i = 0; i < NBLOCKS; i++) {
        sizes[i] = i % 100 == 0 ? 3 * MiB : i % 10 == 0 ? 100 * KiB : (size_t)(16 + i * 13);
        blocks[i] = nm_heap_malloc(h, sizes[i]);
        REQUIRE(blocks[i] != NULL);
        memset(blocks[i], i * 7 + 1, sizes[i]);
    }
    uint64_t resident, on;
    where(a, &resident, &on);
    CHECK(resident > 0 && on == resident, "before: %llu of %llu pages on node %d",
          (unsigned long long)on, (unsigned long long)resident, a);

    struct nm_migrate_report rep;
    int rc = nm_heap_migrate(h, &on_b, &rep);
    CHECK(rc == 0, "migrate to bind:%d: %s (asked %llu moved %llu busy %llu nomem %llu other %llu)",
          b, strerror(errno), (unsigned long long)rep.asked, (unsigned long long)rep.moved,
          (unsigned long long)rep.busy, (unsigned long long)rep.no_memory,
          (unsigned long long)rep.other);
    where(b, &resident, &on);
    CHECK(on == resident, "after the move to node %d: %llu of %llu pages there", b,
          (unsigned long long)on, (unsigned long long)resident);
    CHECK(rep.asked > 0 && rep.moved == rep.asked && rep.not_moved == 0 &&
              rep.resident >= rep.asked,
          "report: resident %llu asked %llu moved %llu, blocks' pages (counted per block) %llu",
          (unsigned long long)rep.resident, (unsigned long long)rep.asked,
          (unsigned long long)rep.moved, (unsigned long long)resident);
    printf("move %d -> %d: resident %llu, asked %llu, moved %llu, not moved %llu\n", a, b,
           (unsigned long long)rep.resident, (unsigned long long)rep.asked,
           (unsigned long long)rep.moved, (unsigned long long)rep.not_moved);
    check_contents("after the move");
    struct nm_ptr_info info;
    for (int i = 0; i < NBLOCKS; i += 50) {
        REQUIRE(nm_ptr_info(blocks[i], &info) == 0);
        CHECK(info.node == b && info.heap == h && info.policy.mode == NM_POLICY_BIND &&
                  nm_nodeset_has(&info.policy.nodes, b),
              "block %d: node %d mode %d", i, info.node, info.policy.mode);
    }
    nm_policy now = nm_heap_policy(h);
    CHECK(now.mode == NM_POLICY_BIND && nm_nodeset_has(&now.nodes, b) && !nm_nodeset_has(&now.nodes, a));
    /* New blocks follow the new policy (fresh memory and reused memory). */
    for (int i = 0; i < 64; i++) {
        size_t size = i % 8 == 0 ? 2 * MiB : 4000 + (size_t)i * 1000;
        char *p = nm_heap_malloc(h, size);
        REQUIRE(p != NULL);
        memset(p, 1, size);
        CHECK(nm_test_node_of(p) == b && nm_test_node_of(p + size - 1) == b,
              "a new %zu B block is on node %d", size, nm_test_node_of(p));
        free(p);
    }

    /* Interleave over both: the pages are on a node of the set already. */
    nm_nodeset both;
    nm_nodeset_clear(&both);
    nm_nodeset_add(&both, a);
    nm_nodeset_add(&both, b);
    nm_policy il = nm_policy_interleave(&both);
    CHECK(nm_heap_migrate(h, &il, &rep) == 0 && rep.asked == 0 && rep.resident > 0,
          "interleave: asked %llu of %llu", (unsigned long long)rep.asked,
          (unsigned long long)rep.resident);

    /* Back to the first node, preferred. */
    nm_policy pref_a = one_node(a, true);
    CHECK(nm_heap_migrate(h, &pref_a, NULL) == 0, "back to %d: %s", a, strerror(errno));
    where(a, &resident, &on);
    CHECK(on == resident, "after the move back: %llu of %llu pages on node %d",
          (unsigned long long)on, (unsigned long long)resident, a);
    check_contents("after the move back");

    /* A node whose memory this process may not use. */
    if (without >= 0) {
        nm_policy bad = one_node(without, false);
        errno = 0;
        CHECK(nm_heap_migrate(h, &bad, &rep) == -1 && errno == EINVAL && rep.asked == 0,
              "node %d (no memory or not allowed): errno %d", without, errno);
        CHECK(nm_heap_policy(h).mode == NM_POLICY_PREFERRED, "a refused move changed the policy");
        where(a, &resident, &on);
        CHECK(on == resident, "a refused move moved pages");
    }
    for (int i = 0; i < NBLOCKS; i++) free(blocks[i]);
    nm_heap_destroy(h);
    printf("heap_migrate: %llu pages moved %d -> %d and back%s\n", (unsigned long long)resident, a, b,
           without >= 0 ? "; a node without usable memory refused" : "");
    return nm_test_done();
}
