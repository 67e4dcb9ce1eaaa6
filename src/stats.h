/*
 * stats.h — what the statistics layer (stats.c) offers inside the library
 * beyond its public functions (numamalloc.h: nm_stats_get, nm_stats_print,
 * nm_stats_json).
 */
#ifndef NM_STATS_H
#define NM_STATS_H

/* In a fork child: no snapshot is being taken (the thread taking one in
 * the parent does not exist here), so the next caller need not wait. */
void nm_stats_after_fork(void);

#endif
