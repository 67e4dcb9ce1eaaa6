/*
 * policy.h — memory policies inside the library (the public half is in
 * numamalloc.h: nm_policy, parsing, checking, formatting).
 *
 * May call the heap layer and everything below it.
 */
#ifndef NM_POLICY_H
#define NM_POLICY_H

#include <stddef.h>

#include "numamalloc.h"

#include "os.h"

/* Bind [start, start + len) with `p` (mbind; `flags`: NM_MPOL_MF_*).
 * Returns 0 or -1 with errno. */
int nm_policy_apply(void *start, size_t len, const nm_policy *p, unsigned flags);

/* The kernel's mode (NM_MPOL_*) and node mask for `p`. */
int nm_policy_kernel_mode(const nm_policy *p);
void nm_policy_kernel_mask(const nm_policy *p, nm_nodemask *mask);

#endif
