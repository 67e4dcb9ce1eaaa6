/*
 * page_queue.h — a heap's lists of pages and segments (page_queue.c).
 *
 * Invariants (changed by the heap's owner, or a purge, holding its lock):
 *   - queue[c].first is the page allocations of class c come from; direct[]
 *     always points at it for the sizes of c it serves (or at nm_empty_page
 *     when the queue is empty).  It is the one queued page with
 *     prev == NULL: the free fast path relies on that (heap.h).
 *   - a page is in exactly one list: its class queue (QUEUED), the full
 *     list (FULL), or none (FREE, its bit set in its segment's free_pages
 *     or purging).
 *   - segments[k] lists the heap's segments of kind k, those with a free
 *     page first, so the first answers "any free page?".
 */
#ifndef NM_PAGE_QUEUE_H
#define NM_PAGE_QUEUE_H

#include "heap.h"

extern struct nm_page nm_empty_page;

/* Point direct[] at the first page of class `cls`. */
void nm_queue_direct_update(struct nm_heap *h, unsigned cls);
/* Take `pg` out of list `q` / append it. */
void nm_queue_remove(struct nm_page_queue *q, struct nm_page *pg);
void nm_queue_push_back(struct nm_page_queue *q, struct nm_page *pg);
/* Take `pg` out of whichever list it is in (its class queue or full). */
void nm_queue_unlink(struct nm_heap *h, struct nm_page *pg);
/* Queue `pg` in its class: first (blocks come from it next) or last. */
void nm_queue_push_page_front(struct nm_heap *h, struct nm_page *pg);
void nm_queue_push_page_back(struct nm_heap *h, struct nm_page *pg);
/* Move `pg` from its class queue to the full list. */
void nm_queue_to_full(struct nm_heap *h, struct nm_page *pg);

/* The heap's segment lists: link first or last, unlink, and move a segment
 * to the front when it has a free page, to the back when it has none. */
void nm_heap_segment_link(struct nm_heap *h, struct nm_segment *s, bool front);
void nm_heap_segment_unlink(struct nm_heap *h, struct nm_segment *s);
void nm_heap_segment_reorder(struct nm_heap *h, struct nm_segment *s);

#endif
