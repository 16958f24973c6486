/* checkpoint: the low watermark over out-of-order completions, kept as a ring of bits.
 * Each bit is set once by a settle and cleared once when the watermark passes it, so a
 * settle costs amortised O(1); whole settled bytes are skipped eight at a time. */
#include "checkpoint.h"

#include <stdlib.h>

static bool bit_get(const Ckpt *c, size_t i)
{
    return (c->bits[i / 8] >> (i % 8)) & 1u;
}

static void bit_set(Ckpt *c, size_t i)
{
    c->bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

static void bit_clear(Ckpt *c, size_t i)
{
    c->bits[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

bool ckpt_init(Ckpt *c, uint64_t start, size_t capacity)
{
    c->low = start;
    c->cap = 0;
    c->head = 0;
    c->bits = NULL;
    if (capacity == 0)
        return false;
    size_t nbytes = capacity / 8 + (capacity % 8 != 0);
    c->bits = calloc(nbytes, 1);
    if (c->bits == NULL)
        return false;
    c->cap = capacity;
    return true;
}

bool ckpt_in_window(const Ckpt *c, uint64_t seq)
{
    return seq >= c->low && seq - c->low < (uint64_t)c->cap;
}

/* Move the watermark over the settled prefix, clearing the bits it passes. */
static void ckpt_advance(Ckpt *c)
{
    for (;;) {
        /* A whole settled byte that lies inside the ring: skip it in one step. */
        if (c->head % 8 == 0 && c->cap - c->head >= 8 && c->bits[c->head / 8] == 0xFF) {
            c->bits[c->head / 8] = 0;
            c->low += 8;
            c->head += 8;
        } else if (bit_get(c, c->head)) {
            bit_clear(c, c->head);
            c->low++;
            c->head++;
        } else {
            return;
        }
        if (c->head == c->cap)
            c->head = 0;
    }
}

bool ckpt_settle(Ckpt *c, uint64_t seq)
{
    if (!ckpt_in_window(c, seq))
        return false;
    uint64_t off = seq - c->low; /* < cap */
    size_t idx =
        (size_t)off < c->cap - c->head ? c->head + (size_t)off : (size_t)off - (c->cap - c->head);
    if (bit_get(c, idx))
        return false; /* settled twice: a caller bug, refuse it visibly */
    bit_set(c, idx);
    if (idx == c->head)
        ckpt_advance(c);
    return true;
}

uint64_t ckpt_low(const Ckpt *c)
{
    return c->low;
}

void ckpt_free(Ckpt *c)
{
    free(c->bits);
    c->bits = NULL;
    c->cap = 0;
    c->head = 0;
}
