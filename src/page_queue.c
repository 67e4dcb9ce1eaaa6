/*
 * page_queue.c — the lists a heap keeps: per size class a queue of pages
 * that may have free blocks (the first is the one blocks come from, which
 * direct[] points at), the list of full pages, and per segment kind the
 * list of its segments, those with free pages first.  The invariants are
 * in page_queue.h.  Owner only (or a purge holding the heap's lock).
 *
 * May call the page and segment layers.
 */
#include "page_queue.h"

/* The page every empty slot points at: it never has a free block. */
struct nm_page nm_empty_page;

/* ---- page queues ------------------------------------------------------------------ */

/* Keep direct[] pointing at the first page of class `cls`. */
void nm_queue_direct_update(struct nm_heap *h, unsigned cls)
{
    /* Secure mode: every allocation takes the slow path (heap.h). */
    if (nm_class_size[cls] > NM_DIRECT_MAX || nm_proc.slow_allocs) return;
    struct nm_page *pg = h->queue[cls].first ? h->queue[cls].first : &nm_empty_page;
    size_t lo = cls == 0 ? 0 : (nm_class_size[cls - 1] + 16) >> 4;
    size_t hi = nm_class_size[cls] >> 4;
    for (size_t i = lo; i <= hi; i++) h->direct[i] = pg;
}

/* A purge unlinks a page while the owner runs, and the owner's free reads
 * `prev` of the page after it without the lock (heap.h): `prev` is stored
 * atomically here.  The owner reads only whether it is NULL, and only for
 * pages in a class queue (a full page's free takes the lock), which this
 * never changes for a page still queued: a purge never takes the first
 * page of a class queue. */
void nm_queue_remove(struct nm_page_queue *q, struct nm_page *pg)
{
    if (pg->prev) pg->prev->next = pg->next; else q->first = pg->next;
    if (pg->next) __atomic_store_n(&pg->next->prev, pg->prev, __ATOMIC_RELAXED);
    else q->last = pg->prev;
    pg->next = NULL;
    __atomic_store_n(&pg->prev, NULL, __ATOMIC_RELAXED);
}

static void queue_push_front(struct nm_page_queue *q, struct nm_page *pg)
{
    pg->prev = NULL;
    pg->next = q->first;
    if (q->first) q->first->prev = pg; else q->last = pg;
    q->first = pg;
}

void nm_queue_push_back(struct nm_page_queue *q, struct nm_page *pg)
{
    pg->next = NULL;
    pg->prev = q->last;
    if (q->last) q->last->next = pg; else q->first = pg;
    q->last = pg;
}

static struct nm_page_queue *queue_of(struct nm_heap *h, struct nm_page *pg)
{
    return pg->state == NM_PAGE_FULL ? &h->full : &h->queue[pg->size_class];
}

void nm_queue_unlink(struct nm_heap *h, struct nm_page *pg)
{
    bool was_first = h->queue[pg->size_class].first == pg;
    nm_queue_remove(queue_of(h, pg), pg);
    if (was_first) nm_queue_direct_update(h, pg->size_class);
}

void nm_queue_push_page_front(struct nm_heap *h, struct nm_page *pg)
{
    pg->state = NM_PAGE_QUEUED;
    nm_page_sync_owner(pg);
    queue_push_front(&h->queue[pg->size_class], pg);
    nm_queue_direct_update(h, pg->size_class);
}

void nm_queue_push_page_back(struct nm_heap *h, struct nm_page *pg)
{
    pg->state = NM_PAGE_QUEUED;
    nm_page_sync_owner(pg);
    bool empty = h->queue[pg->size_class].first == NULL;
    nm_queue_push_back(&h->queue[pg->size_class], pg);
    if (empty) nm_queue_direct_update(h, pg->size_class);
}

void nm_queue_to_full(struct nm_heap *h, struct nm_page *pg)
{
    nm_queue_unlink(h, pg);
    pg->state = NM_PAGE_FULL;
    nm_page_sync_owner(pg);
    nm_queue_push_back(&h->full, pg);
}

/* ---- segments of a heap -------------------------------------------------------------- */

void nm_heap_segment_link(struct nm_heap *h, struct nm_segment *s, bool front)
{
    struct nm_segment **head = &h->segments[s->kind];
    s->heap_prev = NULL;
    if (front || !*head) {
        s->heap_next = *head;
        if (*head) (*head)->heap_prev = s;
        *head = s;
        return;
    }
    struct nm_segment *tail = *head;
    while (tail->heap_next) tail = tail->heap_next;
    tail->heap_next = s;
    s->heap_prev = tail;
    s->heap_next = NULL;
}

void nm_heap_segment_unlink(struct nm_heap *h, struct nm_segment *s)
{
    if (s->heap_prev) s->heap_prev->heap_next = s->heap_next;
    else h->segments[s->kind] = s->heap_next;
    if (s->heap_next) s->heap_next->heap_prev = s->heap_prev;
    s->heap_next = s->heap_prev = NULL;
}

/* Move a segment to the front of its list when it has a free page, to the
 * back when it has none, so the front segment answers "any free page?". */
void nm_heap_segment_reorder(struct nm_heap *h, struct nm_segment *s)
{
    bool has_free = atomic_load_explicit(&s->free_pages, memory_order_relaxed) != 0;
    if (has_free && h->segments[s->kind] != s) {
        nm_heap_segment_unlink(h, s);
        nm_heap_segment_link(h, s, true);
    } else if (!has_free && s->heap_next) {
        nm_heap_segment_unlink(h, s);
        nm_heap_segment_link(h, s, false);
    }
}

