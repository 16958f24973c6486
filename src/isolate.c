/* isolate: depth-first halving. A range that failed is split into two halves, the lower
 * one tried first; when the lower half commits, the upper half must hold the bad line, so
 * it is split again without being tried. Single lines are always tried, so that a line is
 * called poison only when it failed on its own. k poison lines among n cost about
 * 2k log2(n) flushes. */
#include "isolate.h"

#include <stdlib.h>
#include <string.h>

static void push(Isolate *it, size_t lo, size_t hi, bool lower)
{
    /* Cannot overflow: see ISOLATE_STACK. */
    it->stack[it->depth++] = (IsoRange){.lo = lo, .hi = hi, .lower = lower};
}

/* Push the two halves of a bad range, the lower one on top so that it is tried first. */
static void split(Isolate *it, size_t lo, size_t hi)
{
    size_t mid = lo + (hi - lo) / 2;
    push(it, mid, hi, false);
    push(it, lo, mid, true);
}

bool iso_start(Isolate *it, size_t n)
{
    memset(it, 0, sizeof *it);
    if (n == 0)
        return false;
    it->bad = malloc(sizeof *it->bad * n);
    if (it->bad == NULL)
        return false;
    it->n = n;
    if (n == 1)
        push(it, 0, 1, false); /* tried once more alone: the failure may have been another's */
    else
        split(it, 0, n);
    return true;
}

bool iso_next(Isolate *it, size_t *lo, size_t *hi)
{
    while (it->depth > 0) {
        IsoRange r = it->stack[--it->depth];
        if (r.known_bad && r.hi - r.lo > 1) {
            split(it, r.lo, r.hi);
            continue;
        }
        it->current = r;
        it->pending = true;
        it->tries++;
        *lo = r.lo;
        *hi = r.hi;
        return true;
    }
    return false;
}

void iso_result(Isolate *it, bool ok)
{
    if (!it->pending)
        return;
    it->pending = false;
    IsoRange r = it->current;
    if (ok) {
        /* A committed lower half: its sibling, right below it on the stack, holds the
         * line that made their parent fail. */
        if (r.lower && it->depth > 0)
            it->stack[it->depth - 1].known_bad = true;
        return;
    }
    if (r.hi - r.lo == 1)
        it->bad[it->nbad++] = r.lo; /* at most n lines, each reported once */
    else
        split(it, r.lo, r.hi);
}

const size_t *iso_bad(const Isolate *it, size_t *count)
{
    *count = it->nbad;
    return it->bad;
}

void iso_free(Isolate *it)
{
    free(it->bad);
    memset(it, 0, sizeof *it);
}
