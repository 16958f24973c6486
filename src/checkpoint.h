/* checkpoint: the low watermark over out-of-order completions.
 * IDs get consecutive sequence numbers in the order they were read; they settle in any
 * order; the watermark is the first sequence number not yet settled, so every ID before
 * it is settled. Memory is one bit per ID in the window [low, low + capacity). */
#ifndef PGENRICH_CHECKPOINT_H
#define PGENRICH_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "compat.h"

typedef struct Ckpt {
    uint64_t low;  /* first unsettled sequence number */
    size_t cap;    /* window size in sequence numbers */
    size_t head;   /* ring index of `low` */
    uint8_t *bits; /* ring of cap bits; owned */
} Ckpt;

/* A tracker whose first sequence number is `start` and whose window holds `capacity`
 * sequence numbers. Returns false when memory runs out or capacity is 0. Free with
 * ckpt_free (also safe after a failed init). */
bool ckpt_init(Ckpt *c, uint64_t start, size_t capacity) WUR;

/* Mark seq settled and advance the watermark past every settled prefix.
 * Returns false (changing nothing) if seq < low (already settled), if seq was already
 * settled inside the window, or if seq >= low + capacity (outside the window: the
 * caller dispatched too far). Amortised O(1). */
bool ckpt_settle(Ckpt *c, uint64_t seq) WUR;

/* The watermark: every sequence number below it is settled. */
uint64_t ckpt_low(const Ckpt *c);

/* Whether seq may be dispatched: low <= seq < low + capacity. */
bool ckpt_in_window(const Ckpt *c, uint64_t seq);

/* Release the ring. Afterwards nothing is in the window and every settle fails. */
void ckpt_free(Ckpt *c);

#endif
