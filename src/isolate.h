/* isolate: find the lines of a rejected flush that the database refuses, by retrying the
 * batch in halves. Pure bookkeeping: the caller flushes the ranges this module hands out
 * and reports whether each one committed; what is left at the end are the single lines
 * that fail on their own (the poison rows), every other line having committed. */
#ifndef PGENRICH_ISOLATE_H
#define PGENRICH_ISOLATE_H

#include <stdbool.h>
#include <stddef.h>
#include "compat.h"

/* Enough for any batch: each split pushes at most one range more than it pops, and the
 * depth of the halving is below 64 for any size_t count. */
#define ISOLATE_STACK 130

typedef struct IsoRange {
    size_t lo, hi;  /* the lines [lo, hi) */
    bool lower;     /* the lower half of a split: its sibling lies right below it */
    bool known_bad; /* its sibling committed, so it holds a bad line: split it untried */
} IsoRange;

typedef struct Isolate {
    IsoRange stack[ISOLATE_STACK];
    int depth;
    IsoRange current; /* handed out by iso_next, waiting for iso_result */
    bool pending;
    size_t *bad; /* the poison lines found so far, ascending; owned */
    size_t nbad;
    size_t n;     /* lines in the batch */
    size_t tries; /* ranges handed out */
} Isolate;

/* Start on a batch of n lines (n >= 1) that failed as a whole. Returns false when n is 0
 * or memory runs out (nothing to free then). Free with iso_free. */
bool iso_start(Isolate *it, size_t n) WUR;

/* The next range to flush on its own, in *lo, *hi (never empty). Returns false when the
 * search is over: every line is either committed or in iso_bad. Ranges come in ascending
 * order of their lines, lower half first. Call iso_result before the next iso_next. */
bool iso_next(Isolate *it, size_t *lo, size_t *hi) WUR;

/* Report the range of the last iso_next: committed (ok) or refused for its data. A refused
 * single line is a poison line; a refused longer range is split in two. */
void iso_result(Isolate *it, bool ok);

/* The poison lines found, ascending; valid until iso_free. */
const size_t *iso_bad(const Isolate *it, size_t *count);

void iso_free(Isolate *it);

#endif
